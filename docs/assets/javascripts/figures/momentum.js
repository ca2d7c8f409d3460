/* Figure: momentum's step against plain SGD (chapter 2).
 * compute() ports gradient_sequence, momentum_steps and momentum_limit of
 * snippets/interactive.py (torch.optim.SGD's rule, buffer b1 = g1). */
(function (root) {
  "use strict";
  var kit = typeof module === "object" && module.exports ?
    require("./shared.js") : root.FigureKit;
  var LR = 0.1, STEPS = 50, SHOWN = [1, 2, 5, 10, 20, 50];

  function sequence(kind) {
    var g = [], rng = new kit.Mulberry32(2), t;
    for (t = 0; t < STEPS; t++) {
      if (kind === "constant") g.push(1);
      else if (kind === "alternating") g.push(t % 2 === 0 ? 1 : -1);
      else if (kind === "noisy") g.push(1 + 1.5 * rng.uniform());
      else throw new Error("unknown gradient sequence " + kind);
    }
    return g;
  }

  function steps(grads, lr, mu, tau, nesterov) {
    var out = [], buf = null;
    grads.forEach(function (g) {
      if (mu !== 0) {
        buf = buf === null ? g : buf * mu + (1 - tau) * g;
        g = nesterov ? g + mu * buf : buf;
      }
      out.push(lr * g);
    });
    return out;
  }

  function compute(input) {
    var g = sequence(input.gradients), mu = input.mu, tau = input.tau;
    return {
      sgd: steps(g, input.lr, 0, 0, false),
      momentum: steps(g, input.lr, mu, tau, input.nesterov),
      limit: mu === 0 ? input.lr : input.lr * (1 - tau) / (1 - mu)
    };
  }

  function build(host) {
    var f = kit.frame(host, "Interactive: how far torch.optim.SGD moves " +
      "\u03b8 at each of " + STEPS + " steps (learning rate \u03b3 = " + LR + "), with and " +
      "without momentum. The dashed line is the constant-gradient limit " +
      "\u03b3(1\u2212\u03c4)/(1\u2212\u03bc); the table gives the steps.");
    var mu = kit.control(f.form, { label: "momentum \u03bc", min: 0, max: 99,
      value: 90, show: function (v) { return String(v / 100); } });
    var tau = kit.control(f.form, { label: "dampening \u03c4", min: 0, max: 10,
      value: 0, show: function (v) { return String(v / 10); } });
    var grads = kit.control(f.form, { label: "gradient sequence",
      kind: "select", value: "constant", options: [["constant", "constant, g = 1"],
        ["alternating", "alternating, +1 \u22121"],
        ["noisy", "noisy, 1 \u00b1 1.5 (seeded)"]] });
    var nest = kit.control(f.form, { label: "Nesterov", kind: "checkbox",
      value: false, hint: "needs \u03bc > 0 and \u03c4 = 0 (torch refuses otherwise)" });

    function input() {
      var m = Number(mu.value) / 100, d = Number(tau.value) / 10;
      nest.disabled = m === 0 || d !== 0;
      if (nest.disabled) nest.checked = false;
      return { lr: LR, mu: m, tau: d, nesterov: nest.checked,
        gradients: grads.value };
    }

    function draw() {
      var x = input(), out = compute(x), name = x.nesterov ? "Nesterov" : "momentum";
      host.setAttribute("data-state", JSON.stringify(x));
      f.plot.textContent = "";
      var pts = function (a) { return a.map(function (v, i) { return [i + 1, v]; }); };
      var all = out.sgd.concat(out.momentum, [out.limit, 0]);
      kit.chart(f.plot, { label: "Line chart of the step size over " + STEPS + " steps: plain SGD and " +
        name + " (\u03bc = " + x.mu + ", \u03c4 = " + x.tau + ") on a " + x.gradients +
        " gradient; momentum's steps approach the dashed limit " + kit.fmt(out.limit) + ".",
        x: [1, STEPS], y: kit.extent(all), xTitle: "step t",
        yTitle: "step: \u03b8 before \u2212 \u03b8 after",
        lines: [{ y: out.limit, text: "limit " + kit.fmt(out.limit) }],
        series: [{ cls: "ifig-s1", points: pts(out.sgd) },
          { cls: "ifig-s2", points: pts(out.momentum) }] });
      kit.legend(f.plot, [["ifig-s1", "plain SGD"], ["ifig-s2", name],
        ["ifig-ref", "limit \u03b3(1\u2212\u03c4)/(1\u2212\u03bc)", true]]);
      f.readout.textContent = "";
      kit.table(f.readout, ["step t", "plain SGD", name], SHOWN.map(function (t) {
        return [t, { key: "sgd." + (t - 1), value: out.sgd[t - 1] },
          { key: "momentum." + (t - 1), value: out.momentum[t - 1] }];
      }).concat([["limit", "", { key: "limit", value: out.limit }]]));
    }
    return kit.live(f.form, draw);
  }

  if (typeof module === "object" && module.exports) {
    module.exports = { compute: compute };
  } else {
    kit.register("momentum", build);
  }
})(this);
