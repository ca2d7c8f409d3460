/* Figure: Adam as a state machine, step by step (chapter 3).
 * compute() ports adam_states of snippets/interactive.py: theta from 0,
 * torch.optim.Adam's for-loop rule on one scalar. */
(function (root) {
  "use strict";
  var kit = typeof module === "object" && module.exports ?
    require("./shared.js") : root.FigureKit;
  var LR = 0.001, MAX = 40, START = "1, 1, 1, 1, 1, -1, -1, 0, 0, 2";
  var BETA2 = [0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999];

  function compute(input) {
    var theta = 0, state = {}, rows = [];
    input.gradients.forEach(function (g) {
      var row = kit.adamStep(theta, g, state, input);
      theta = row.theta;
      rows.push(row);
    });
    return { rows: rows };
  }

  // "1, -0.5 2" -> [1, -0.5, 2]; a message when it is not a list of numbers
  function parse(text) {
    var parts = text.split(/[\s,;]+/).filter(Boolean), out = [];
    for (var i = 0; i < parts.length; i++) {
      var g = Number(parts[i]);
      if (!isFinite(g) || Math.abs(g) > 1e6) return "not a number below a million: " + parts[i];
      out.push(g);
    }
    if (!out.length || out.length > MAX) return "give 1 to " + MAX + " gradients";
    return out;
  }

  function build(host) {
    var f = kit.frame(host, "Interactive: one weight \u03b8 (from 0) under " +
      "torch.optim.Adam(lr=" + LR + "), one gradient per step. The table " +
      "is the state before and after step t and what the step computes " +
      "from it; the chart shows the bias-correction factors 1\u2212\u03b2\u1d57.");
    var text = kit.control(f.form, { label: "gradients g\u2081, g\u2082, \u2026 " +
      "(edit; up to " + MAX + ")", kind: "text", value: START });
    var note = kit.el("p", { "class": "ifig-note", role: "status" });
    f.form.appendChild(note);
    var step = kit.control(f.form, { label: "step t", min: 1, max: 10, value: 1,
      show: function (v, i) { return v + " of " + i.max; } });
    var b1 = kit.control(f.form, { label: "\u03b2\u2081", min: 0, max: 99, value: 90,
      show: function (v) { return String(v / 100); } });
    var b2 = kit.control(f.form, { label: "\u03b2\u2082", min: 0, max: BETA2.length - 1,
      value: 5, show: function (v) { return String(BETA2[v]); } });
    var eps = kit.control(f.form, { label: "\u03b5", min: 1, max: 12, value: 8,
      show: function (v) { return "1e\u2212" + v; } });
    var grads = parse(START);

    function draw() {
      var parsed = parse(text.value);
      note.textContent = typeof parsed === "string" ? parsed + "; showing the last valid list." : "";
      if (typeof parsed !== "string") grads = parsed;
      step.max = String(grads.length);
      step.refresh();
      var t = Number(step.value), x = { gradients: grads, lr: LR,
        beta1: Number(b1.value) / 100, beta2: BETA2[b2.value],
        eps: Number("1e-" + eps.value) };
      var rows = compute(x).rows, now = rows[t - 1], prev = rows[t - 2];
      host.setAttribute("data-state", JSON.stringify(x));
      f.plot.textContent = "";
      var pts = function (k) { return rows.map(function (r, i) { return [i + 1, r[k]]; }); };
      kit.chart(f.plot, { label: "Line chart of the bias-correction factors 1 minus beta1 to " +
        "the t and 1 minus beta2 to the t for steps 1 to " + rows.length + "; step " + t + " is marked.",
        x: [1, Math.max(2, rows.length)], y: [0, 1], xTitle: "step t",
        yTitle: "1 \u2212 \u03b2\u1d57", marker: t,
        series: [{ cls: "ifig-s1", points: pts("bc1") }, { cls: "ifig-s2", points: pts("bc2") }] });
      kit.legend(f.plot, [["ifig-s1", "1 \u2212 \u03b2\u2081\u1d57 (divides m)"],
        ["ifig-s2", "1 \u2212 \u03b2\u2082\u1d57 (divides v)"]]);
      var c = function (r, i, k, s) {
        return r ? { key: "rows." + i + "." + k, value: r[k] } : s;
      };
      var pair = function (label, k, before) {
        return [label, c(prev, t - 2, k, before), c(now, t - 1, k)];
      };
      f.readout.textContent = "";
      kit.table(f.readout, ["", "after step " + (t - 1), "after step " + t], [
        ["step", t - 1, t],
        pair("exp_avg m", "m", "0"), pair("exp_avg_sq v", "v", "0"),
        pair("gradient g", "g", "\u2014"),
        pair("1 \u2212 \u03b2\u2081\u1d57", "bc1", "\u2014"),
        pair("1 \u2212 \u03b2\u2082\u1d57", "bc2", "\u2014"),
        pair("m\u0302 = m / (1 \u2212 \u03b2\u2081\u1d57)", "m_hat", "\u2014"),
        pair("v\u0302 = v / (1 \u2212 \u03b2\u2082\u1d57)", "v_hat", "\u2014"),
        pair("update \u2212\u03b3 m\u0302 / (\u221av\u0302 + \u03b5)", "update", "\u2014"),
        pair("\u03b8", "theta", "0")]);
    }
    return kit.live(f.form, draw);
  }

  if (typeof module === "object" && module.exports) {
    module.exports = { compute: compute, parse: parse };
  } else {
    kit.register("adam-state", build);
  }
})(this);
