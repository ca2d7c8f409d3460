/* Figure: a training step's memory over time (chapters 1 and 6, page A).
 * compute() ports memory_timeline of snippets/interactive.py: the moments
 * of the memory calculator (memcalc.js, the closed form of
 * snippets/memcalc/transformer.py), micro-batch 1, the later micro-batches
 * and the optimizer step, with the peak. hooks/interactive.py loads
 * memcalc.js on every page that shows this figure. */
(function (root) {
  "use strict";
  var node = typeof module === "object" && module.exports;
  var kit = node ? require("./shared.js") : root.FigureKit;
  var calc = node ? require("../memcalc.js") : root.memcalc;
  var MODEL = { layers: 12, hidden: 768, heads: 12, vocab: 50257,
    seq: 1024, batch: 8, optimizer: "adamw" };
  var FAMILIES = ["params", "grads", "optimizer_state", "master_weights",
    "activations", "weight_copies", "transients", "buffers", "workspace"];
  var NAMES = { params: "parameters", grads: "gradients",
    optimizer_state: "optimizer state", master_weights: "master weights",
    activations: "activations", weight_copies: "autocast weight copies",
    transients: "transients", buffers: "communication buffers",
    workspace: "cuBLAS workspace" };
  var GIB = 1073741824;

  function compute(input) {
    function estimate(k) {
      var o = {}, key;
      for (key in MODEL) o[key] = MODEL[key];
      o.checkpointing = input.checkpointing;
      o.implementation = input.implementation;
      o.precision = input.precision;
      o.micro_batches = k;
      return calc.estimate(o);
    }
    function tag(part) {
      return function (m) {
        return { phase: m.phase, label: m.label, bytes: m.bytes,
          breakdown: m.breakdown,
          part: m.phase === "optimizer step" ? "optimizer step" : part };
      };
    }
    var k = input.micro_batches, last = estimate(k), rows = [];
    var part = "micro-batch 1";
    if (k > 1) {
      rows = estimate(1).moments.filter(function (m) {
        return m.phase !== "optimizer step";
      }).map(tag(part));
      part = k === 2 ? "micro-batch 2" : "micro-batches 2\u2013" + k;
    }
    var peak = rows.length + last.peak_index;
    return { moments: rows.concat(last.moments.map(tag(part))), peak: peak,
      bytes: last.peak, phase: last.phase, breakdown: last.breakdown,
      parameters: last.parameters };
  }

  function gib(n) { return (n / GIB).toFixed(2); }

  // stacked bars, one per moment, grouped by part, the peak outlined
  function bars(parent, out) {
    var W = Math.max(280, Math.floor(parent.clientWidth || 560));
    var H = 262, L = 42, R = 8, T = 22, B = 52, el = kit.el;
    var n = out.moments.length, slot = (W - L - R) / n;
    var top = Math.max.apply(null, out.moments.map(function (m) {
      return m.bytes;
    })) / GIB * 1.08;
    var sy = function (g) { return H - B - g / top * (H - T - B); };
    var svg = el("svg:svg", { width: W, height: H,
      viewBox: "0 0 " + W + " " + H, role: "img", "class": "ifig-chart",
      "aria-label": "Stacked bars of the GPU memory at each of " + n +
        " moments of a training step, by family; the peak, " +
        gib(out.bytes) + " GiB in the " + out.phase + ", is outlined." });
    var step = top > 8 ? 2 : top > 4 ? 1 : 0.5;
    for (var g = 0; g <= top; g += step) {
      svg.appendChild(el("svg:line", { x1: L, x2: W - R, y1: sy(g),
        y2: sy(g), "class": "ifig-grid" }));
      svg.appendChild(el("svg:text", { x: L - 5, y: sy(g) + 4,
        "text-anchor": "end" }, kit.fmt(g, 3)));
    }
    svg.appendChild(el("svg:text", { x: 4, y: 14, "class": "ifig-ytitle" },
      "GiB allocated"));
    var start = 0;
    out.moments.forEach(function (m, i) {
      var x = L + i * slot + slot * 0.15, w = slot * 0.7, y = H - B;
      FAMILIES.forEach(function (f) {
        var h = m.breakdown[f] / GIB / top * (H - T - B);
        if (h <= 0) return;
        y -= h;
        svg.appendChild(el("svg:rect", { x: x.toFixed(1), y: y.toFixed(1),
          width: w.toFixed(1), height: h.toFixed(1),
          "class": "ifig-bar ifig-f-" + f }));
      });
      if (i === out.peak) {
        svg.appendChild(el("svg:rect", { x: x.toFixed(1), y: y.toFixed(1),
          width: w.toFixed(1), height: (H - B - y).toFixed(1),
          "class": "ifig-peak" }));
        svg.appendChild(el("svg:text", { x: (x + w / 2).toFixed(1),
          y: (y - 5).toFixed(1), "text-anchor": "middle",
          "class": "ifig-reftext" }, "peak"));
      }
      svg.appendChild(el("svg:text", { x: (x + w / 2).toFixed(1),
        y: H - B + 14, "text-anchor": "middle" },
        m.phase === "optimizer step" ? "S" : m.phase[0].toUpperCase()));
      var next = out.moments[i + 1];
      if (!next || next.part !== m.part) {    // the part's name below
        var x0 = L + start * slot, x1 = L + (i + 1) * slot;
        svg.appendChild(el("svg:line", { x1: x0 + 2, x2: x1 - 2,
          y1: H - B + 20, y2: H - B + 20, "class": "ifig-axis" }));
        var words = m.part === "optimizer step" ? "step" : m.part;
        if (x1 - x0 < words.length * 6.5) {
          words = words.replace("micro-batches ", "").replace(
            "micro-batch ", "#");
        }
        svg.appendChild(el("svg:text", { x: ((x0 + x1) / 2).toFixed(1),
          y: H - B + 33, "text-anchor": "middle" }, words));
        start = i + 1;
      }
    });
    svg.appendChild(el("svg:line", { x1: L, x2: W - R, y1: H - B,
      y2: H - B, "class": "ifig-axis" }));
    svg.appendChild(el("svg:text", { x: (L + W - R) / 2, y: H - 4,
      "text-anchor": "middle" }, "moments of the step, in time order"));
    parent.appendChild(svg);
  }

  function build(host) {
    if (!calc) {
      host.textContent = "This figure needs memcalc.js on the page.";
      return null;
    }
    var f = kit.frame(host, "Interactive: the memory calculator's moments " +
      "of one training step of GPT-2 small (124 M parameters, AdamW, 8 " +
      "sequences of 1,024 tokens) on one GPU, in time order: each bar is " +
      "what is allocated at that moment, by family. With K micro-batches " +
      "the later ones are alike: each meets the gradients accumulated so " +
      "far. Under each bar, its phase: F forward, B backward, S the " +
      "optimizer step. Numbers in GiB; the tables give them all.");
    var ckpt = kit.control(f.form, { label: "checkpointing", kind: "select",
      value: "none", options: [["none", "none"],
        ["full", "full, per block"], ["selective", "selective"]] });
    var k = kit.control(f.form, { label: "accumulation steps K", min: 1,
      max: 8, value: 1, show: String });
    var impl = kit.control(f.form, { label: "step implementation",
      kind: "select", value: "foreach", options: [["foreach", "foreach"],
        ["for-loop", "for-loop"], ["fused", "fused"]] });
    var prec = kit.control(f.form, { label: "precision", kind: "select",
      value: "fp32", options: [["fp32", "fp32"],
        ["bf16-autocast", "bf16 autocast"],
        ["bf16-mixed", "bf16 mixed (fp32 masters)"], ["bf16", "pure bf16"]] });

    function draw() {
      var x = { checkpointing: ckpt.value, micro_batches: Number(k.value),
        implementation: impl.value, precision: prec.value };
      var out = compute(x), top = out.moments[out.peak];
      host.setAttribute("data-state", JSON.stringify(x));
      f.plot.textContent = "";
      bars(f.plot, out);
      kit.legend(f.plot, FAMILIES.filter(function (fam) {
        return out.moments.some(function (m) { return m.breakdown[fam]; });
      }).map(function (fam) { return ["ifig-f-" + fam, NAMES[fam]]; }));
      f.readout.textContent = "";
      var when = out.phase === "optimizer step" ? "the optimizer step" :
        "the " + out.phase + " pass";
      var p = kit.el("p");
      p.appendChild(kit.el("strong", {}, "Peak "));
      p.appendChild(kit.el("span", { "data-key": "bytes", "data-unit": "GiB",
        "data-value": String(out.bytes) }, gib(out.bytes)));
      p.appendChild(document.createTextNode(" GiB in " + when + " (" +
        (top.phase === "optimizer step" ? "" : top.part + ": ") + top.label +
        "). At the peak, in GiB:"));
      f.readout.appendChild(p);
      var cells = function (key, bytes) {
        return { key: key, value: bytes, text: gib(bytes) };
      };
      var t = kit.table(f.readout, ["family", "GiB"], FAMILIES.filter(
        function (fam) { return out.breakdown[fam]; }).map(function (fam) {
        return [NAMES[fam], cells("breakdown." + fam, out.breakdown[fam])];
      }));
      var t2 = kit.table(f.readout, ["moment", "GiB"],
        out.moments.map(function (m, i) {
          return [(m.part === "optimizer step" ? "" : m.part + ": ") +
            m.label + (i === out.peak ? " (peak)" : ""),
          cells("moments." + i + ".bytes", m.bytes)];
        }));
      [t, t2].forEach(function (table) {
        table.querySelectorAll("[data-key]").forEach(function (c) {
          c.setAttribute("data-unit", "GiB");
        });
      });
      t2.querySelectorAll("tbody tr")[out.peak].className = "ifig-peakrow";
    }
    return kit.live(f.form, draw);
  }

  if (node) {
    module.exports = { compute: compute };
  } else {
    kit.register("memory-timeline", build);
  }
})(this);
