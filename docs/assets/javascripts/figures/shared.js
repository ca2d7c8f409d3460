/* What the interactive figures share: the seeded generator, the register
 * that hooks/interactive.py's placeholders call into, labelled controls,
 * an SVG line chart and a readout table.
 *
 * A page line `<!-- interactive: NAME -->` becomes
 * <div class="interactive" data-interactive="NAME">, which NAME.js fills.
 * Each figure module computes with `compute(input)`, a port of
 * snippets/interactive.py that tests/figures_golden.js runs under Node
 * against tests/golden/figures/NAME.json; only the drawing needs a browser.
 * Plain JavaScript, nothing fetched. Every number a figure shows is also a
 * table cell carrying data-key (a path into compute's output) and
 * data-value (the full number), for screen readers and the tests.
 */
(function (root) {
  "use strict";

  // mulberry32, written the same way in snippets/interactive.py
  function Mulberry32(seed) { this.state = seed >>> 0; }
  Mulberry32.prototype.nextU32 = function () {
    this.state = (this.state + 0x6D2B79F5) >>> 0;
    var t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  // in [-1, 1): a multiple of 2^-23, exact in both languages
  Mulberry32.prototype.uniform = function () {
    return (this.nextU32() >>> 8) / 8388608 - 1;
  };

  function compute(input) {  // tests/golden/figures/shared.json
    var g = new Mulberry32(input.seed), u32 = [], uniform = [], i;
    for (i = 0; i < input.count; i++) u32.push(g.nextU32());
    for (i = 0; i < input.count; i++) uniform.push(g.uniform());
    return { u32: u32, uniform: uniform };
  }

  /* One torch.optim.Adam/AdamW step on a scalar (adam_step of
   * snippets/interactive.py): o = {lr, beta1, beta2, eps, weightDecay,
   * decoupled}; state holds m, v and the running powers of the betas. */
  function adamStep(theta, g, state, o) {
    var wd = o.weightDecay || 0;
    if (o.decoupled) theta = theta * (1 - o.lr * wd);
    else if (wd !== 0) g = g + wd * theta;
    var m = state.m || 0, v = state.v || 0, w = 1 - o.beta1;
    m = Math.abs(w) < 0.5 ? m + w * (g - m) : g - (g - m) * (1 - w);
    v = v * o.beta2 + (1 - o.beta2) * g * g;
    var p1 = (state.p1 === undefined ? 1 : state.p1) * o.beta1;
    var p2 = (state.p2 === undefined ? 1 : state.p2) * o.beta2;
    var bc1 = 1 - p1, bc2 = 1 - p2;
    var denom = Math.sqrt(v) / Math.sqrt(bc2) + o.eps;
    var update = -o.lr / bc1 * m / denom;
    state.m = m; state.v = v; state.p1 = p1; state.p2 = p2;
    return { theta: theta + update, g: g, m: m, v: v, bc1: bc1, bc2: bc2,
      m_hat: m / bc1, v_hat: v / bc2, update: update };
  }

  // ---- numbers as text ---------------------------------------------------
  function fmt(x, digits) {
    digits = digits || 4;
    if (x === 0) return "0";
    var a = Math.abs(x), s = x.toPrecision(digits);
    if (a < 1e-3 || s.indexOf("e") >= 0) {
      s = x.toExponential(digits - 1).replace(/\.?0+e/, "e").replace("e+", "e");
    } else if (s.indexOf(".") >= 0) {
      s = s.replace(/0+$/, "").replace(/\.$/, "");
    }
    return s.replace(/-/g, "\u2212");
  }

  // ---- the DOM -----------------------------------------------------------
  var SVG = "http://www.w3.org/2000/svg", serial = 0;

  function el(tag, attrs, text) {
    var node = tag.indexOf("svg:") === 0 ?
      document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (attrs[k] !== null && attrs[k] !== undefined) node.setAttribute(k, attrs[k]);
    });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /* A labelled control with its value shown as text (<output>).
   * spec: {label, kind: "range" | "select" | "checkbox" | "text", value,
   * min, max, step (range), options: [[value, text]] (select),
   * show: (value, input) -> text, hint}. Returns the input element. */
  function control(parent, spec) {
    var id = "ifig-" + (++serial), kind = spec.kind || "range";
    var box = el("div", { "class": "ifig-control ifig-" + kind });
    var label = el("label", { "for": id }, spec.label), input;
    if (kind === "select") {
      input = el("select", { id: id });
      spec.options.forEach(function (o) {
        input.appendChild(el("option", { value: o[0] }, o[1]));
      });
    } else {
      input = el("input", { id: id, type: kind === "range" ? "range" :
        kind, min: spec.min, max: spec.max, step: spec.step });
    }
    if (kind === "checkbox") input.checked = !!spec.value;
    else input.value = String(spec.value);
    if (kind === "checkbox") { box.appendChild(input); box.appendChild(label); }
    else { box.appendChild(label); box.appendChild(input); }
    if (spec.show) {
      var out = el("output", { "for": id });
      var show = function () { out.textContent = spec.show(input.value, input); };
      input.addEventListener("input", show);
      show();
      box.appendChild(out);
      input.refresh = show;
    }
    if (spec.hint) box.appendChild(el("small", {}, spec.hint));
    parent.appendChild(box);
    return input;
  }

  /* A figure's frame: caption, controls (a form), chart and readout. */
  function frame(host, caption) {
    var fig = el("figure", { "class": "ifig" });
    var form = el("form", { "class": "ifig-controls" });
    form.addEventListener("submit", function (e) { e.preventDefault(); });
    fig.appendChild(form);
    var plot = el("div", { "class": "ifig-plot" });
    fig.appendChild(plot);
    var readout = el("div", { "class": "ifig-readout" });
    fig.appendChild(readout);
    fig.appendChild(el("figcaption", {}, caption));
    host.appendChild(fig);
    return { figure: fig, form: form, plot: plot, readout: readout };
  }

  // redraw whenever a control of `form` moves; draw once now
  function live(form, draw) {
    form.addEventListener("input", draw);
    form.addEventListener("change", draw);
    draw();
    return draw;
  }

  /* A cell showing `value` (a number) rounded, with data-key and
   * data-value for the tests; or plain text. */
  function cell(tag, c) {
    if (c === null || typeof c !== "object") return el(tag, {}, String(c));
    return el(tag, { "data-key": c.key, "data-value": String(c.value) },
      c.text !== undefined ? c.text : fmt(c.value, c.digits));
  }

  function table(parent, headers, rows) {
    var t = el("table", { "class": "ifig-table" });
    var head = el("tr");
    headers.forEach(function (h) { head.appendChild(el("th", {}, h)); });
    t.appendChild(el("thead")).appendChild(head);
    var body = t.appendChild(el("tbody"));
    rows.forEach(function (r) {
      var tr = body.appendChild(el("tr"));
      r.forEach(function (c, i) { tr.appendChild(cell(i ? "td" : "th", c)); });
    });
    parent.appendChild(t);
    return t;
  }

  function ticks(lo, hi, count) {
    var span = hi - lo || 1, step = Math.pow(10, Math.floor(Math.log10(span / count)));
    var err = span / count / step;
    step *= err >= 7.5 ? 10 : err >= 3.5 ? 5 : err >= 1.5 ? 2 : 1;
    var out = [], v = Math.ceil(lo / step) * step;
    for (; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
    return out;
  }

  /* A line chart drawn at the width it is shown (text stays 12 px).
   * o: {label (the aria-label), x: [lo, hi], y: [lo, hi], xTitle, yTitle,
   * series: [{cls, points: [[x, y]], dash}], lines: [{y, text}],
   * marker: x, logY (y values are log10; ticks read 1e-3), height}. */
  function chart(parent, o) {
    var W = Math.max(240, Math.floor(parent.clientWidth || 560));
    var H = o.height || 240, L = 50, R = 12, T = 24, B = 38;
    var svg = el("svg:svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H,
      role: "img", "aria-label": o.label, "class": "ifig-chart" });
    var x0 = o.x[0], x1 = o.x[1], y0 = o.y[0], y1 = o.y[1];
    var sx = function (x) { return L + (x - x0) / (x1 - x0 || 1) * (W - L - R); };
    var sy = function (y) { return H - B - (y - y0) / (y1 - y0 || 1) * (H - T - B); };
    var yt = o.logY ? ticks(Math.ceil(y0), Math.floor(y1), 4) : ticks(y0, y1, 5);
    yt.forEach(function (v) {
      if (o.logY && v !== Math.round(v)) return;
      svg.appendChild(el("svg:line", { x1: L, x2: W - R, y1: sy(v), y2: sy(v), "class": "ifig-grid" }));
      svg.appendChild(el("svg:text", { x: L - 6, y: sy(v) + 4, "text-anchor": "end" },
        fmt(o.logY ? Math.pow(10, v) : v, 3)));
    });
    ticks(x0, x1, Math.max(4, Math.floor(W / 70))).forEach(function (v) {
      svg.appendChild(el("svg:line", { x1: sx(v), x2: sx(v), y1: H - B, y2: H - B + 4, "class": "ifig-axis" }));
      svg.appendChild(el("svg:text", { x: sx(v), y: H - B + 16, "text-anchor": "middle" }, fmt(v, 3)));
    });
    svg.appendChild(el("svg:line", { x1: L, x2: W - R, y1: H - B, y2: H - B, "class": "ifig-axis" }));
    svg.appendChild(el("svg:text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle" }, o.xTitle));
    svg.appendChild(el("svg:text", { x: 4, y: 14, "class": "ifig-ytitle" }, o.yTitle));
    (o.lines || []).forEach(function (h) {
      svg.appendChild(el("svg:line", { x1: L, x2: W - R, y1: sy(h.y), y2: sy(h.y), "class": "ifig-ref" }));
      svg.appendChild(el("svg:text", { x: W - R, y: sy(h.y) - 5, "text-anchor": "end", "class": "ifig-reftext" }, h.text));
    });
    if (o.marker !== undefined) {
      svg.appendChild(el("svg:line", { x1: sx(o.marker), x2: sx(o.marker), y1: T, y2: H - B, "class": "ifig-marker" }));
    }
    o.series.forEach(function (s) {
      var pts = s.points.map(function (p) {
        var y = Math.min(Math.max(p[1], y0), y1);
        return sx(p[0]).toFixed(1) + "," + sy(y).toFixed(1);
      }).join(" ");
      svg.appendChild(el("svg:polyline", { points: pts, "class": "ifig-line " + s.cls,
        "stroke-dasharray": s.dash || null }));
    });
    parent.appendChild(svg);
    return svg;
  }

  function legend(parent, items) {  // items: [[cls, text, dashed]]
    var ul = el("ul", { "class": "ifig-legend" });
    items.forEach(function (i) {
      var li = ul.appendChild(el("li"));
      li.appendChild(el("span", { "class": "ifig-swatch " + i[0] + (i[2] ? " ifig-dashed" : "") }));
      li.appendChild(document.createTextNode(i[1]));
    });
    parent.appendChild(ul);
  }

  function extent(values, pad) {
    var lo = Math.min.apply(null, values), hi = Math.max.apply(null, values);
    var d = (hi - lo || Math.abs(hi) || 1) * (pad || 0.05);
    return [lo - d, hi + d];
  }

  // ---- the register: placeholders find their module ------------------------
  var builders = {}, redraws = [];

  function start() {
    document.querySelectorAll("[data-interactive]").forEach(function (host) {
      var build = builders[host.getAttribute("data-interactive")];
      if (!build || host.hasAttribute("data-ready")) return;
      host.textContent = "";
      var redraw = build(host);
      if (redraw) redraws.push(redraw);
      host.setAttribute("data-ready", "true");
    });
  }

  function register(name, build) {
    builders[name] = build;
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", start);
    } else {
      start();
    }
  }

  var api = { Mulberry32: Mulberry32, compute: compute, adamStep: adamStep, fmt: fmt, el: el,
    control: control, frame: frame, live: live, table: table, chart: chart,
    legend: legend, extent: extent, register: register };
  if (typeof module === "object" && module.exports) {
    module.exports = api;
  } else {
    root.FigureKit = api;
    var width = window.innerWidth, pending = null;
    window.addEventListener("resize", function () {
      if (window.innerWidth === width) return;  // a phone's bar, not a resize
      width = window.innerWidth;
      clearTimeout(pending);
      pending = setTimeout(function () { redraws.forEach(function (f) { f(); }); }, 150);
    });
  }
})(this);
