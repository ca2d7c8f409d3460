/* Figure: does an update survive being stored in bf16? (chapter 7)
 * compute() ports store, add_repeatedly, update_survival, regression_problem
 * and regression_run of snippets/interactive.py: fp32 by Math.fround, bf16
 * by rounding the fp32 bits, stochastic rounding's bits from mulberry32. */
(function (root) {
  "use strict";
  var kit = typeof module === "object" && module.exports ?
    require("./shared.js") : root.FigureKit;
  var WEIGHTS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100];
  var UPDATES = [1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4,
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1];
  var REPEATS = [1, 10, 100, 1000], LRS = [0.05, 0.1, 0.2];
  var ROUNDINGS = ["fp32", "nearest", "kahan", "stochastic"];
  var NAMES = { fp32: "fp32", nearest: "bf16, to nearest",
    kahan: "bf16 + Kahan", stochastic: "bf16, stochastic" };
  var fr = Math.fround, F = new Float32Array(1), U = new Uint32Array(F.buffer);

  function bits(x) { F[0] = x; return U[0]; }
  function fromBits(b) { U[0] = b >>> 0; return F[0]; }
  function nearest(x) {  // fp32 -> bf16, ties to even (torch's cast)
    var b = bits(x);
    return fromBits((b + 0x7FFF + ((b >>> 16) & 1)) & 0xFFFF0000);
  }

  // weight + update stored by `r`; returns [weight, Kahan compensation]
  function store(w, u, c, r, rng) {
    if (r === "fp32") return [fr(w + u), c];
    if (r === "nearest") return [nearest(fr(w + u)), c];
    if (r === "kahan") {
      var wanted = fr(w + fr(u + c)), stored = nearest(wanted);
      return [stored, nearest(fr(wanted - stored))];
    }
    if (r === "stochastic") {
      var noise = rng.nextU32() >>> 16;
      return [fromBits((bits(fr(w + u)) + noise) & 0xFFFF0000), c];
    }
    throw new Error("unknown rounding " + r);
  }

  function survival(x) {
    var start = nearest(fr(x.weight)), u = fr(x.update);
    var out = { start: start, update: u, target: start + x.steps * u,
      spacing: fromBits(bits(start) + 0x10000) - start };
    ROUNDINGS.forEach(function (r) {
      var rng = new kit.Mulberry32(3), w = start, c = 0, s;
      for (var i = 0; i < x.steps; i++) { s = store(w, u, c, r, rng); w = s[0]; c = s[1]; }
      out[r] = { weight: w, compensation: c, total: w + c, arrived: (w - start) / (x.steps * u) };
    });
    return out;
  }

  function problem() {  // 64 examples of 16 features, a little noise
    var rng = new kit.Mulberry32(1), X = [], truth = [], y = [], i, j;
    for (i = 0; i < 64; i++) {
      X.push([]);
      for (j = 0; j < 16; j++) X[i].push(rng.uniform());
    }
    for (j = 0; j < 16; j++) truth.push(2 * rng.uniform());
    X.forEach(function (row) {
      var s = 0;
      for (var k = 0; k < 16; k++) s += row[k] * truth[k];
      y.push(s + 0.01 * rng.uniform());
    });
    return { X: X, y: y };
  }

  function regression(r, lr, p) {
    var X = p.X, y = p.y, m = X.length, n = X[0].length;
    var w = [], comp = [], rng = new kit.Mulberry32(2), losses = [], last = 0, i, j, s;
    for (j = 0; j < n; j++) { w.push(0); comp.push(0); }
    for (var step = 0; step < 400; step++) {
      var res = [], loss = 0, changed = false;
      for (i = 0; i < m; i++) {
        s = 0;
        for (j = 0; j < n; j++) s += X[i][j] * w[j];
        res.push(s - y[i]);
      }
      for (i = 0; i < m; i++) loss += res[i] * res[i];
      losses.push(loss / m);
      for (j = 0; j < n; j++) {
        s = 0;
        for (i = 0; i < m; i++) s += X[i][j] * res[i];
        var next = store(w[j], fr(-lr * (2 / m) * s), comp[j], r, rng);
        if (next[0] !== w[j]) changed = true;
        w[j] = next[0]; comp[j] = next[1];
      }
      if (changed) last = step;
    }
    return { losses: losses, last_change: last, weights: w };
  }

  function compute(input) {
    if (input.part === "update") return survival(input);
    var p = problem(), runs = {};
    ROUNDINGS.forEach(function (r) { runs[r] = regression(r, input.lr, p); });
    return { runs: runs };
  }

  function bars(parent, out, label) {  // the share of N*u that arrived
    var W = Math.max(240, Math.floor(parent.clientWidth || 560)), L = 118, row = 28;
    var H = row * 4 + 30, top = 1.5;
    var svg = kit.el("svg:svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H,
      role: "img", "aria-label": label, "class": "ifig-chart" });
    var sx = function (v) { return L + Math.max(0, Math.min(v, top)) / top * (W - L - 12); };
    ROUNDINGS.forEach(function (r, i) {
      var y = 6 + i * row, v = out[r].arrived;
      svg.appendChild(kit.el("svg:text", { x: L - 6, y: y + 15, "text-anchor": "end" }, NAMES[r]));
      svg.appendChild(kit.el("svg:rect", { x: L, y: y + 3, height: 16, width: Math.max(1, sx(v) - L),
        "class": "ifig-bar ifig-s" + (i + 1) }));
    });
    [0, 0.5, 1, 1.5].forEach(function (v) {
      svg.appendChild(kit.el("svg:line", { x1: sx(v), x2: sx(v), y1: 4, y2: H - 22,
        "class": v === 1 ? "ifig-ref" : "ifig-grid" }));
      svg.appendChild(kit.el("svg:text", { x: sx(v), y: H - 8, "text-anchor": "middle" }, v * 100 + " %"));
    });
    parent.appendChild(svg);
  }

  function buildUpdate(host) {
    var f = kit.frame(host, "Interactive: a weight stored in bf16 gets the same fp32 " +
      "update N times. How much of N\u00b7u arrives, stored four ways? The weight " +
      "starts at its bf16 value in every row.");
    var wi = kit.control(f.form, { label: "weight", min: 0, max: WEIGHTS.length - 1, value: 6,
      show: function (v) { return String(WEIGHTS[v]); } });
    var ui = kit.control(f.form, { label: "update u", min: 0, max: UPDATES.length - 1, value: 9,
      show: function (v) { return String(UPDATES[v]); } });
    var ni = kit.control(f.form, { label: "times N", kind: "select", value: 100,
      options: REPEATS.map(function (n) { return [n, String(n)]; }) });

    function draw() {
      var x = { part: "update", weight: WEIGHTS[wi.value], update: UPDATES[ui.value],
        steps: Number(ni.value) }, out = compute(x);
      host.setAttribute("data-state", JSON.stringify(x));
      f.plot.textContent = "";
      bars(f.plot, out, "Bar chart of the share of " + x.steps + " updates of " + x.update +
        " that reached a weight of " + x.weight + ": fp32 " + kit.fmt(out.fp32.arrived) +
        ", bf16 to nearest " + kit.fmt(out.nearest.arrived) + ", Kahan " +
        kit.fmt(out.kahan.arrived) + ", stochastic " + kit.fmt(out.stochastic.arrived) + ".");
      f.readout.textContent = "";
      var p = f.readout.appendChild(kit.el("p"));
      var add = function (t, key) {  // text, then the number at `key` ("kahan.total")
        p.appendChild(document.createTextNode(t));
        if (!key) return;
        var v = key.split(".").reduce(function (o, k) { return o[k]; }, out);
        p.appendChild(kit.el("span", { "data-key": key, "data-value": String(v) }, kit.fmt(v, 6)));
      };
      add("Stored in bf16 the weight is ", "start");
      add("; its bf16 neighbours lie ", "spacing");
      add(" apart, so rounding to nearest drops any update below half of that. The update in fp32: ", "update");
      add(".");
      kit.table(f.readout, ["stored as", "weight after N", "share of N\u00b7u arrived"], ROUNDINGS.map(function (r) {
        return [NAMES[r], { key: r + ".weight", value: out[r].weight, digits: 8 },
          { key: r + ".arrived", value: out[r].arrived }];
      }));
      p = f.readout.appendChild(kit.el("p"));
      add("Exact: ", "target");
      add(". Kahan's compensation buffer holds ", "kahan.compensation");
      add(", what its weight has not taken yet: weight + buffer = ", "kahan.total");
      add(" (the buffer is bf16 too, and rounds).");
    }
    return kit.live(f.form, draw);
  }

  function buildRegression(host) {
    var f = kit.frame(host, "Interactive: least squares (16 weights, 64 examples) by " +
      "gradient descent for 400 steps, computed here in your browser. Only the " +
      "storing of each update differs between the four runs.");
    var li = kit.control(f.form, { label: "learning rate", kind: "select", value: 0.1,
      options: LRS.map(function (v) { return [v, String(v)]; }) });
    var replay = f.form.appendChild(kit.el("button", { type: "button", "class": "md-button" },
      "Replay the run"));
    var out, frame = null;

    function plot(upto) {
      f.plot.textContent = "";
      var logs = ROUNDINGS.map(function (r) {
        return out.runs[r].losses.slice(0, upto).map(function (v, i) { return [i, Math.log10(v)]; });
      });
      var all = [].concat.apply([], ROUNDINGS.map(function (r) {
        return out.runs[r].losses.map(Math.log10); }));
      kit.chart(f.plot, { label: "Line chart of the loss over 400 steps on a log scale, " +
        "one line per way of storing the weights; rounding to nearest stalls first.",
        x: [0, 399], y: [Math.floor(Math.min.apply(null, all)), Math.ceil(Math.max.apply(null, all))],
        logY: true, xTitle: "step", yTitle: "loss",
        series: logs.map(function (p, i) { return { cls: "ifig-s" + (i + 1), points: p,
          dash: i === 1 ? "6 3" : null }; }) });
      kit.legend(f.plot, ROUNDINGS.map(function (r, i) { return ["ifig-s" + (i + 1), NAMES[r], i === 1]; }));
    }

    function draw() {
      var x = { part: "regression", lr: Number(li.value) };
      if (out && out.lr === x.lr) return;  // a select fires input, then change
      out = compute(x);
      out.lr = x.lr;
      host.setAttribute("data-state", JSON.stringify(x));
      plot(400);
      f.readout.textContent = "";
      kit.table(f.readout, ["stored as", "loss after 400 steps", "last step that changed a weight"],
        ROUNDINGS.map(function (r) {
          return [NAMES[r], { key: "runs." + r + ".losses.399", value: out.runs[r].losses[399], digits: 2 },
            { key: "runs." + r + ".last_change", value: out.runs[r].last_change, text: String(out.runs[r].last_change) }];
        }));
    }
    replay.addEventListener("click", function () {
      if (window.matchMedia("(prefers-reduced-motion: reduce)").matches) return plot(400);
      var shown = 0;
      cancelAnimationFrame(frame);
      (function next() {
        shown = Math.min(400, shown + 8);
        plot(shown);
        if (shown < 400) frame = requestAnimationFrame(next);
      })();
    });
    kit.live(f.form, draw);
    return function () { plot(400); };
  }

  if (typeof module === "object" && module.exports) {
    module.exports = { compute: compute };
  } else {
    kit.register("bf16-rounding", function (host) {
      var a = kit.el("div", { "data-part": "update" }), b = kit.el("div", { "data-part": "regression" });
      host.appendChild(a);
      host.appendChild(b);
      var redrawA = buildUpdate(a), redrawB = buildRegression(b);
      return function () { redrawA(); redrawB(); };
    });
  }
})(this);
