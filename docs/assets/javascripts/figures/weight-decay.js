/* Figure: L2 decay against decoupled decay under Adam (chapter 4).
 * compute() ports decay_trajectories of snippets/interactive.py: two
 * weights from 1, gradients (-1)^t * scale, torch.optim.Adam(weight_decay)
 * and torch.optim.AdamW(weight_decay), default betas and eps. */
(function (root) {
  "use strict";
  var kit = typeof module === "object" && module.exports ?
    require("./shared.js") : root.FigureKit;
  var LRS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1];
  var STEPS = [50, 100, 200, 400], SCALES = [1, 0.01];

  function run(x, decoupled) {
    return x.scales.map(function (scale) {
      var theta = 1, state = {}, out = [];
      for (var t = 0; t < x.steps; t++) {
        theta = kit.adamStep(theta, t % 2 === 0 ? scale : -scale, state, {
          lr: x.lr, beta1: 0.9, beta2: 0.999, eps: 1e-8,
          weightDecay: x.weight_decay, decoupled: decoupled }).theta;
        out.push(theta);
      }
      return out;
    });
  }

  function compute(input) {
    return { l2: run(input, false), decoupled: run(input, true) };
  }

  function build(host) {
    var f = kit.frame(host, "Interactive: two weights start at 1; one gets " +
      "gradients \u00b11, the other \u00b10.01, alternating so that they pull " +
      "nowhere on average. Under Adam's L2 decay the small-gradient weight " +
      "decays hardest; AdamW decays both alike.");
    var wd = kit.control(f.form, { label: "weight_decay \u03bb", min: 0, max: 100,
      value: 10, show: function (v) { return String(v / 100); } });
    var lr = kit.control(f.form, { label: "lr \u03b3", min: 0, max: LRS.length - 1,
      value: 3, show: function (v) { return String(LRS[v]); } });
    var steps = kit.control(f.form, { label: "steps", kind: "select", value: 100,
      options: STEPS.map(function (s) { return [s, String(s)]; }) });

    function draw() {
      var x = { lr: LRS[lr.value], weight_decay: Number(wd.value) / 100,
        steps: Number(steps.value), scales: SCALES };
      var out = compute(x), last = x.steps - 1;
      var low = Math.min.apply(null, [0].concat(out.l2[0], out.l2[1],
        out.decoupled[0], out.decoupled[1]));
      host.setAttribute("data-state", JSON.stringify(x));
      f.plot.textContent = "";
      var panels = kit.el("div", { "class": "ifig-panels" });
      f.plot.appendChild(panels);
      // both panels first: each chart is drawn at its panel's final width
      [["l2", "Adam(weight_decay=\u03bb): L2"], ["decoupled", "AdamW(weight_decay=\u03bb)"]]
        .map(function (p) {
          var box = panels.appendChild(kit.el("div", { "class": "ifig-panel" }));
          box.appendChild(kit.el("p", { "class": "ifig-paneltitle" }, p[1]));
          return [p, box];
        }).forEach(function (pb) {
          var p = pb[0], box = pb[1];
          kit.chart(box, { label: "Line chart of the two weights over " + x.steps +
            " steps under " + p[1] + ": gradients \u00b11 end at " + kit.fmt(out[p[0]][0][last]) +
            ", gradients \u00b10.01 end at " + kit.fmt(out[p[0]][1][last]) + ".",
            x: [1, x.steps], y: [low, 1.02],
            xTitle: "step", yTitle: "\u03b8", height: 200,
            series: out[p[0]].map(function (a, i) {
              return { cls: "ifig-s" + (i + 1), dash: i ? "6 3" : null,
                points: a.map(function (v, t) { return [t + 1, v]; }) };
            }) });
        });
      kit.legend(f.plot, [["ifig-s1", "gradients \u00b11"], ["ifig-s2", "gradients \u00b10.01", true]]);
      f.readout.textContent = "";
      kit.table(f.readout, ["\u03b8 after " + x.steps + " steps", "Adam (L2)", "AdamW"],
        SCALES.map(function (s, i) {
          return ["gradients \u00b1" + s, { key: "l2." + i + "." + last, value: out.l2[i][last] },
            { key: "decoupled." + i + "." + last, value: out.decoupled[i][last] }];
        }));
    }
    return kit.live(f.form, draw);
  }

  if (typeof module === "object" && module.exports) {
    module.exports = { compute: compute };
  } else {
    kit.register("weight-decay", build);
  }
})(this);
