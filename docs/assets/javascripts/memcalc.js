/* The memory calculator of "A · Memory calculator": a training step's peak
 * GPU memory for a GPT-style transformer or a decoder family (Llama,
 * Mistral, Qwen2, Mixtral), from its shapes, for one rank of N.
 *
 * The model is a line-by-line port of snippets/memcalc/transformer.py,
 * decoder.py, families.py, sharding.py and optimizers.py (the closed forms
 * the optimizer-memory command runs); tests/test_memcalc_golden.py runs
 * this file under Node
 * against tests/golden/memcalc.json, which the Python writes, and requires
 * the same bytes. All sizes are whole numbers of bytes below 2^53, so
 * JavaScript's numbers hold them exactly.
 *
 * Plain JavaScript, no dependencies, nothing fetched: the form is drawn
 * into <div id="memcalc"></div> on the page.
 */
(function (root) {
  "use strict";

  // ---- allocator (snippets/memcalc/allocator.py) ----------------------
  var BLOCK = 512;
  var MIB = 1048576;
  // two cuBLAS workspaces of 32 MiB (forward and autograd's thread) and
  // cuBLASLt's 1 MiB, on compute capability 9.0
  var WORKSPACE = 2 * 32 * MIB + MIB;

  function R(n) {
    return n <= 0 ? 0 : Math.ceil(n / BLOCK) * BLOCK;
  }

  function ceilDiv(a, b) {
    if (!(a < 9007199254740992)) return Math.ceil(a / b);  // past exact
    var q = Math.floor(a / b);
    while (q * b < a) q += 1;
    while (q > 0 && (q - 1) * b >= a) q -= 1;
    return q;
  }

  function sum(list) {
    var total = 0;
    for (var i = 0; i < list.length; i++) total += list[i];
    return total;
  }

  // ---- optimizers (snippets/memcalc/optimizers.py) ---------------------
  var OPTIMIZERS = ["sgd", "sgd-momentum", "adam", "adamw", "amsgrad",
    "adafactor", "muon", "adam8bit"];
  var IMPLEMENTATIONS = ["foreach", "for-loop", "fused"];
  var FUSED = ["sgd", "sgd-momentum", "adam", "adamw", "amsgrad",
    "adam8bit"];
  var BNB_BLOCK = 256;
  var BNB_MIN_8BIT = 4096;
  var BNB_QMAPS = 2 * R(256 * 4);

  function Param(shape, itemsize, hidden) {
    var n = 1;
    for (var i = 0; i < shape.length; i++) n *= shape[i];
    return { shape: shape, itemsize: itemsize, numel: n,
      nbytes: n * itemsize, hidden: hidden !== false };
  }

  // Muon takes the 2-D weights of hidden layers; embeddings, the head,
  // biases and norms go to AdamW.
  function isMuonMatrix(p) {
    return p.shape.length === 2 && p.hidden;
  }

  function checkOptimizer(optimizer, implementation) {
    if (OPTIMIZERS.indexOf(optimizer) < 0) {
      throw new Error("unknown optimizer '" + optimizer +
        "'; choose one of " + OPTIMIZERS.join(", "));
    }
    if (IMPLEMENTATIONS.indexOf(implementation) < 0) {
      throw new Error("unknown implementation '" + implementation +
        "'; choose one of " + IMPLEMENTATIONS.join(", "));
    }
    if (implementation === "fused" &&
        FUSED.concat(["muon"]).indexOf(optimizer) < 0) {
      throw new Error(optimizer + " has no fused implementation; " +
        "choose foreach or for-loop");
    }
  }

  function stateTensors(optimizer, implementation, p) {
    var n = p.numel, size = p.nbytes, d = p.shape.length;
    if (optimizer === "sgd") return [];
    if (optimizer === "sgd-momentum") return [size];
    if (optimizer === "adam" || optimizer === "adamw" ||
        optimizer === "amsgrad") {
      var out = optimizer === "amsgrad" ? [size, size, size] : [size, size];
      if (implementation === "fused") out.push(4);
      return out;
    }
    if (optimizer === "adafactor") {
      if (d > 1) {
        return [n / p.shape[d - 1] * p.itemsize,
          n / p.shape[d - 2] * p.itemsize];
      }
      return [size];
    }
    if (optimizer === "muon") {
      if (isMuonMatrix(p)) return [size];
      return stateTensors("adamw", implementation, p);
    }
    if (optimizer === "adam8bit") {
      if (n < BNB_MIN_8BIT) return [n * 4, n * 4];
      var blocks = ceilDiv(n, BNB_BLOCK);
      return [n, n, blocks * 4, blocks * 4];
    }
    throw new Error(optimizer);
  }

  function stateBytes(optimizer, implementation, params) {
    var total = 0, big = false;
    for (var i = 0; i < params.length; i++) {
      var tensors = stateTensors(optimizer, implementation, params[i]);
      for (var j = 0; j < tensors.length; j++) total += R(tensors[j]);
      if (params[i].numel >= BNB_MIN_8BIT) big = true;
    }
    if (optimizer === "adam8bit" && big) total += BNB_QMAPS;
    return total;
  }

  // Python's references to tensors: a tensor dies with its last name.
  function Frame() {
    this.live = 0;
    this.peak = 0;
    this.size = {};
    this.refs = {};
    this.names = {};
    this.order = [];
    this.next = 0;
  }
  Frame.prototype.alloc = function (sizes) {
    this.next += 1;
    var size = 0;
    for (var i = 0; i < sizes.length; i++) size += R(sizes[i]);
    this.size[this.next] = size;
    this.refs[this.next] = 0;
    this.live += size;
    if (this.live > this.peak) this.peak = this.live;
    return this.next;
  };
  Frame.prototype.drop = function (obj) {
    if (this.refs[obj] === 0) {
      this.live -= this.size[obj];
      delete this.size[obj];
      delete this.refs[obj];
    }
  };
  Frame.prototype.bind = function (name, obj) {
    this.refs[obj] += 1;
    var old = this.names.hasOwnProperty(name) ? this.names[name] : null;
    if (old === null) this.order.push(name);
    this.names[name] = obj;
    if (old !== null) this.unref(old);
  };
  Frame.prototype.unbind = function (name) {
    if (!this.names.hasOwnProperty(name)) return;
    var obj = this.names[name];
    delete this.names[name];
    this.order.splice(this.order.indexOf(name), 1);
    this.unref(obj);
  };
  Frame.prototype.unref = function (obj) {
    this.refs[obj] -= 1;
    this.drop(obj);
  };
  Frame.prototype.temp = function (nbytes) {
    this.drop(this.alloc([nbytes]));
  };
  Frame.prototype.exit = function () {
    var names = this.order.slice();
    for (var i = 0; i < names.length; i++) this.unbind(names[i]);
  };

  function adam(f, params, implementation) {
    if (implementation === "fused") return;
    if (implementation === "foreach") {
      f.drop(f.alloc(params.map(function (p) { return p.nbytes; })));
      return;
    }
    for (var i = 0; i < params.length; i++) {
      var root = f.alloc([params[i].nbytes]);
      var quotient = f.alloc([params[i].nbytes]);
      f.drop(root);
      f.bind("denom", quotient);
    }
    f.exit();
  }

  function adafactorForLoop(f, params) {
    for (var i = 0; i < params.length; i++) {
      var p = params[i], n = p.numel, d = p.itemsize, k = p.shape.length;
      var estimate;
      f.temp(d);
      if (k > 1) {
        f.bind("row_mean", f.alloc([n / p.shape[k - 1] * d]));
        f.bind("col_mean", f.alloc([n / p.shape[k - 2] * d]));
        estimate = f.alloc([n * d]);
        f.bind("var_estimate", estimate);
        f.temp(n / (p.shape[k - 1] * p.shape[k - 2]) * d);
      } else {
        f.bind("grad_squared", f.alloc([n * d]));
        estimate = f.alloc([n * d]);
        f.bind("var_estimate", estimate);
      }
      f.bind("update", estimate);
      f.temp(d);
    }
    f.exit();
  }

  function adafactorForeach(f, params) {
    var i, p;
    for (i = 0; i < params.length; i++) f.temp(params[i].itemsize);
    var keys = [], groups = {};
    for (i = 0; i < params.length; i++) {
      var key = params[i].shape.length > 1 ? "matrix" : "vector";
      if (!groups[key]) { groups[key] = []; keys.push(key); }
      groups[key].push(params[i]);
    }
    for (var g = 0; g < keys.length; g++) {
      var group = groups[keys[g]], estimates;
      var sizes = function (fn) { return group.map(fn); };
      if (keys[g] === "matrix") {
        f.drop(f.alloc(sizes(function (q) {
          return q.numel / q.shape[q.shape.length - 1] * q.itemsize;
        })));
        f.drop(f.alloc(sizes(function (q) {
          return q.numel / q.shape[q.shape.length - 2] * q.itemsize;
        })));
        estimates = f.alloc(sizes(function (q) { return q.nbytes; }));
        f.bind("var_estimates", estimates);
        f.drop(f.alloc(sizes(function (q) {
          var k = q.shape.length;
          return q.numel / (q.shape[k - 1] * q.shape[k - 2]) * q.itemsize;
        })));
      } else {
        f.drop(f.alloc(sizes(function (q) { return q.nbytes; })));
        estimates = f.alloc(sizes(function (q) { return q.nbytes; }));
        f.bind("var_estimates", estimates);
      }
      f.bind("updates", estimates);
      for (i = 0; i < group.length; i++) {
        p = group[i];
        f.temp(p.itemsize);
      }
    }
    f.exit();
  }

  function muon(f, matrices) {
    for (var i = 0; i < matrices.length; i++) {
      var p = matrices[i], n = p.numel;
      var m = Math.min(p.shape[0], p.shape[1]);
      f.bind("update", f.alloc([p.nbytes]));
      if (p.itemsize === 2) f.bind("ns.ortho", f.names["update"]);
      else f.bind("ns.ortho", f.alloc([n * 2]));
      var norm = f.alloc([p.itemsize]);
      var clamped = f.alloc([p.itemsize]);
      f.drop(norm);
      f.drop(clamped);
      for (var step = 0; step < 5; step++) {
        f.bind("ns.gram", f.alloc([m * m * 2]));
        f.bind("ns.gram_update", f.alloc([m * m * 2]));
        f.bind("ns.ortho", f.alloc([n * 2]));
      }
      f.bind("result", f.names["ns.ortho"]);
      f.unbind("ns.gram");
      f.unbind("ns.gram_update");
      f.unbind("ns.ortho");
      f.bind("update", f.names["result"]);
      f.unbind("result");
    }
    f.exit();
  }

  function stepPeakExtra(optimizer, implementation, params) {
    checkOptimizer(optimizer, implementation);
    var f = new Frame();
    if (optimizer === "adam" || optimizer === "adamw" ||
        optimizer === "amsgrad") {
      adam(f, params, implementation);
    } else if (optimizer === "adafactor") {
      if (implementation === "foreach") adafactorForeach(f, params);
      else adafactorForLoop(f, params);
    } else if (optimizer === "muon") {
      muon(f, params.filter(isMuonMatrix));
      adam(f, params.filter(function (p) { return !isMuonMatrix(p); }),
        implementation);
    }
    return f.peak;
  }

  // ---- the transformer (snippets/memcalc/transformer.py) ---------------
  var PRECISIONS = ["fp32", "bf16-autocast", "bf16-mixed", "bf16"];
  var CHECKPOINTING = ["none", "full", "selective"];
  var ATTENTION = ["sdpa", "eager"];
  var FAMILIES = ["params", "grads", "optimizer_state", "master_weights",
    "activations", "weight_copies", "transients", "buffers", "workspace"];
  var TRACED = ["params", "grads", "activations", "weight_copies",
    "transients"];
  var DEFAULTS = { kv_heads: 0, batch: 1, optimizer: "adamw",
    precision: "fp32", implementation: "foreach", attention: "sdpa",
    checkpointing: "none", micro_batches: 1, ranks: 1, zero_stage: 0,
    strategy: "", offload: "none" };

  function withDefaults(defaults, options) {
    var m = {}, key;
    for (key in defaults) m[key] = defaults[key];
    for (key in options) m[key] = options[key];
    return m;
  }

  function shape(options) {
    return withDefaults(DEFAULTS, options);
  }

  function kvWidth(m) {
    return (m.kv_heads || m.heads) * (m.hidden / m.heads);
  }

  function paramList(m) {
    var item = m.precision === "bf16" ? 2 : 4;
    var h = m.hidden, f = 4 * m.hidden, q3 = h + 2 * kvWidth(m);
    var shapes = [[m.vocab, h], [m.seq, h]];
    for (var i = 0; i < m.layers; i++) {
      shapes.push([h], [h], [q3, h], [q3], [h, h], [h], [h], [h],
        [f, h], [f], [h, f], [h]);
    }
    shapes.push([h], [h]);
    // the token and position tables (the head is the token table) are
    // embeddings: AdamW's under Muon
    return shapes.map(function (s, i) { return Param(s, item, i > 1); });
  }

  function attentionKernel(m) {
    if (m.attention === "eager") return "eager";
    var half = m.precision !== "fp32";
    var d = m.hidden / m.heads;
    if (half && d <= 256 && d % 8 === 0) return "cudnn";
    if ((m.kv_heads || m.heads) === m.heads && d % (half ? 8 : 4) === 0) {
      return "efficient";
    }
    return "math";
  }

  function attentionSaved(m, c) {
    var b = m.batch, s = m.seq, h = m.hidden, a = m.heads, T = b * s;
    var kernel = attentionKernel(m);
    var out = R(T * h * c);
    if (kernel === "cudnn" || kernel === "efficient") {
      var seeds = kernel === "cudnn" ? 2 * R(8) : 0;
      return out + R(b * a * s * 4) + seeds;
    }
    if (kernel === "math") {
      return 3 * R(T * h * 4) + R(b * a * s * s * 4) + out;
    }
    var low = m.precision === "bf16" || m.precision === "bf16-mixed";
    var soft = low ? 2 : 4;
    var copy = m.precision === "bf16-autocast" ? R(b * a * s * s * 2) : 0;
    return 4 * out + R(b * a * s * s * soft) + copy;
  }

  function check(m) {
    var names = ["layers", "hidden", "heads", "vocab", "seq", "batch",
      "micro_batches", "ranks"];
    for (var i = 0; i < names.length; i++) {
      var value = m[names[i]];
      if (typeof value !== "number" || !Number.isInteger(value) ||
          value < 1) {
        throw new Error(names[i].replace("_", "-") + " must be a " +
          "positive whole number, not " + String(value));
      }
    }
    if (m.kv_heads < 0 || (m.kv_heads && m.heads % m.kv_heads)) {
      throw new Error("kv-heads must divide heads");
    }
    if (m.hidden % m.heads) {
      throw new Error("hidden must be a multiple of heads");
    }
    checkOptimizer(m.optimizer, m.implementation);
    var choices = [["precision", PRECISIONS], ["attention", ATTENTION],
      ["checkpointing", CHECKPOINTING]];
    for (i = 0; i < choices.length; i++) {
      if (choices[i][1].indexOf(m[choices[i][0]]) < 0) {
        throw new Error("unknown " + choices[i][0] + " '" +
          m[choices[i][0]] + "'; choose one of " + choices[i][1].join(", "));
      }
    }
    if ([0, 1, 2, 3].indexOf(m.zero_stage) < 0) {
      throw new Error("zero-stage must be 0, 1, 2 or 3");
    }
    if (m.zero_stage && m.ranks < 2) {
      throw new Error("a ZeRO stage shards over ranks: give ranks >= 2");
    }
    if (m.zero_stage && m.strategy) {
      throw new Error("give a strategy or a zero-stage, not both");
    }
    if (m.offload !== "none" && !m.strategy) {
      throw new Error("offload needs a strategy: zero1, zero2, zero3 " +
        "or fsdp2");
    }
  }

  function estimate(options) {
    var m = shape(options);
    check(m);
    var b = m.batch, s = m.seq, h = m.hidden, a = m.heads, V = m.vocab;
    var L = m.layers, T = b * s, f = 4 * h, q3 = h + 2 * kvWidth(m);
    var auto = m.precision === "bf16-autocast";
    var low = m.precision === "bf16" || m.precision === "bf16-mixed";
    var c = m.precision !== "fp32" ? 2 : 4;
    var r = low ? 2 : 4;
    var pb = low ? 2 : 4;
    var i;

    var params = paramList(m);
    var mixed = m.precision === "bf16-mixed";
    var paramBytes = sum(params.map(function (p) { return R(p.numel * pb); }));
    if (m.attention === "eager") paramBytes += L * R(s * s);
    var gradBytes = paramBytes - (m.attention === "eager" ? L * R(s * s) : 0);
    var workspace = WORKSPACE;

    var ln = (auto ? R(T * h * 2) : R(T * h * r)) + 2 * R(T * 4);
    var kernel = attentionKernel(m);
    var fused = kernel === "cudnn" || kernel === "efficient";
    var fullBlock = 2 * ln + (fused ? R(T * q3 * c) : 0) +
      attentionSaved(m, c) + 2 * R(T * h * r) + 2 * R(T * f * c);
    var layerCopies = auto ?
      R(q3 * h * 2) + R(h * h * 2) + 2 * R(f * h * 2) : 0;
    var block, copies;
    if (m.checkpointing === "none") {
      block = fullBlock;
      copies = layerCopies;
    } else if (m.checkpointing === "full") {
      block = R(T * h * r);
      copies = 0;
    } else {
      var attention;
      if (fused) {
        attention = attentionSaved(m, c);
      } else {
        var u = kernel === "math" ? 4 : c;
        attention = R(b * a * s * s * u) + R(T * h * u);
      }
      block = R(T * h * r) + R(T * q3 * c) + attention + R(T * h * c) +
        R(T * f * c) + R(T * h * c);
      copies = 0;
    }
    var embedding = R(b * (s + 1) * 8) + R(s * 8) + R(T * h * r);
    var head = ln + R(T * 8) + (auto ? R(V * h * 2) : 0);
    var biasCopies = auto ? (R(q3 * 2) + 2 * R(h * 2) + R(f * 2)) * L : 0;
    var kept = embedding + L * (block + copies) + head + 2 * R(4);
    var logits = R(T * V * c) + (c !== 4 ? R(T * V * 4) : 0);
    var logProbs = R(T * V * 4);
    var accumulated = m.micro_batches > 1 ? gradBytes : 0;

    var moments = [], labels = [];
    function moment(phase, label, families) {
      var fam = {};
      for (var k = 0; k < TRACED.length; k++) fam[TRACED[k]] = 0;
      fam.params = paramBytes;
      for (var key in families) fam[key] = families[key];
      labels.push(label);
      moments.push([phase, fam]);
    }

    var cached = m.checkpointing === "selective" ? 2 * R(T * h * c) : 0;
    var before = embedding + (L - 1) * block;
    var squares = R(b * a * s * s * (low ? 2 : 4));
    if (!fused) {
      var pairs = auto ? R(b * a * s * s * 2) + squares : squares;
      moment("forward", "last block's forward: its attention scores",
        { grads: accumulated,
          activations: before + ln + R(T * q3 * c) + 2 * R(T * h * c) +
            pairs + squares + biasCopies,
          weight_copies: L * layerCopies });
    }
    moment("forward", "last block's forward: all its activations",
      { grads: accumulated,
        activations: before + fullBlock + cached + R(T * h * c) + biasCopies,
        weight_copies: L * layerCopies });
    var headCopy = auto ? R(V * h * 2) : 0;
    moment("forward", "end of the forward pass: the loss",
      { grads: accumulated,
        activations: kept - L * copies - headCopy + logits + logProbs +
          biasCopies,
        weight_copies: L * layerCopies + headCopy });
    var copiesKept = L * copies + headCopy;
    moment("backward", "start of the backward pass: the logits' gradients",
      { grads: accumulated,
        activations: kept - copiesKept + logProbs,
        weight_copies: copiesKept,
        transients: R(4) + 2 * R(T * V * 4) });
    var last = fullBlock - R(T * h * r) - R(T * f * c) + cached;
    var layerGrads = sum([h, h, q3 * h, q3, h * h, h, h, h, f * h, f, h * f,
      h].map(function (n) { return R(n * pb); }));
    var attentionPart = attentionSaved(m, c) - R(T * h * c);
    var indices = [[L, "last"], [1, "first"]];
    for (i = 0; i < 2; i++) {
      var index = indices[i][0], which = indices[i][1];
      var done = (L - index) * layerGrads + 2 * R(h * pb) + R(h * f * pb);
      moment("backward", which + " block's backward: its MLP",
        { grads: Math.max(accumulated, done),
          activations: embedding + (index - 1) * block + last + 2 * R(4),
          weight_copies: (index - 1) * copies + layerCopies,
          transients: 2 * R(T * f * c) + R(T * h * r) + R(V * h * pb) });
      if (!fused) {
        moment("backward", which + " block's backward: its attention",
          { grads: Math.max(accumulated, done + layerGrads),
            activations: embedding + (index - 1) * block + ln +
              attentionPart + 2 * R(4),
            weight_copies: (index - 1) * copies + layerCopies,
            transients: R(b * a * s * s * c) + squares + R(T * h * r) +
              2 * R(T * h * c) + R(V * h * pb) });
      }
    }
    var stored = params.map(function (p) {
      return Param(p.shape, pb, p.hidden);
    });
    var units = [];
    for (i = 0; i < L; i++) {
      var unit = [];
      for (var j = 2 + i * 12; j < 14 + i * 12; j++) unit.push(j);
      units.push(unit);
    }
    var traced = { moments: moments, specs: stored, units: units,
      fixed: paramBytes - gradBytes, workspace: workspace,
      after: { activations: R(4) }, labels: labels };
    var result = perRank(traced, m.optimizer, m.implementation, m.precision,
      m.strategy ? { strategy: m.strategy, ranks: m.ranks,
        offload: m.offload } : fromStage(m.ranks, m.zero_stage));
    result.kernel = kernel;
    return result;
  }

  // ---- sharding (snippets/memcalc/sharding.py) -------------------------
  var STRATEGIES = ["single", "ddp", "zero-redundancy", "zero1", "zero2",
    "zero3", "fsdp2"];
  var OFFLOAD = ["none", "optimizer", "params"];
  var STEP_LABELS = ["optimizer step: fp32 copies of the gradients",
    "optimizer step: its temporaries"];

  function sharding(sh) {
    return withDefaults({ strategy: "single", ranks: 1,
      reshard_after_forward: null, reduce_dtype: "fp32", offload: "none" },
      sh);
  }

  function checkSharding(s, optimizer, precision) {
    function fail(message) { throw new Error(message); }
    var zero = ["zero1", "zero2", "zero3"];
    if (STRATEGIES.indexOf(s.strategy) < 0) {
      fail("unknown strategy '" + s.strategy + "'; choose one of " +
        STRATEGIES.join(", "));
    }
    if (!Number.isInteger(s.ranks) || s.ranks < 1) {
      fail("ranks must be a positive whole number, not " + s.ranks);
    }
    if (s.strategy === "single" && s.ranks !== 1) {
      fail("ranks > 1 need a strategy: ddp, zero-redundancy, zero1, " +
        "zero2, zero3 or fsdp2");
    }
    if (s.strategy !== "single" && s.ranks < 2) {
      fail(s.strategy + " shards over data-parallel ranks: give ranks >= 2");
    }
    if (OFFLOAD.indexOf(s.offload) < 0) {
      fail("unknown offload '" + s.offload + "'; choose one of " +
        OFFLOAD.join(", "));
    }
    if (s.offload !== "none" && zero.concat(["fsdp2"]).indexOf(
        s.strategy) < 0) {
      fail("offload needs zero1, zero2, zero3 or fsdp2");
    }
    if (s.offload === "params" && ["zero3", "fsdp2"].indexOf(
        s.strategy) < 0) {
      fail("offloading parameters needs zero3 or fsdp2");
    }
    if ([null, true, false].indexOf(s.reshard_after_forward) < 0) {
      fail("reshard_after_forward is None, True or False");
    }
    if (s.reshard_after_forward !== null && s.strategy !== "fsdp2") {
      fail("reshard_after_forward is fully_shard's (fsdp2)");
    }
    if (s.reduce_dtype !== "fp32" && s.reduce_dtype !== "bf16") {
      fail("reduce_dtype is fp32 or bf16");
    }
    if (zero.indexOf(s.strategy) >= 0 && (optimizer === "adafactor" ||
        optimizer === "muon")) {
      fail(optimizer + " needs whole matrices; ZeRO's flat partitions " +
        "have none (use zero-redundancy)");
    }
    if (s.strategy === "fsdp2" && optimizer === "muon") {
      fail("muon orthogonalises whole matrices; fsdp2 holds row shards " +
        "(use zero-redundancy)");
    }
    if (s.strategy === "fsdp2" && precision === "bf16-autocast") {
      fail("with fsdp2 use bf16-mixed (MixedPrecisionPolicy) rather than " +
        "autocast");
    }
  }

  function fromStage(ranks, stage) {
    if (stage) return { strategy: "zero" + stage, ranks: ranks };
    return { strategy: ranks > 1 ? "ddp" : "single", ranks: ranks };
  }

  function shardRows(shape, ranks) {
    if (!shape.length) return shape;
    return [ceilDiv(shape[0], ranks)].concat(shape.slice(1));
  }

  function zeroRedundancyPartition(numels, ranks) {
    var order = numels.map(function (n, i) { return i; });
    order.sort(function (x, y) {
      return numels[y] - numels[x] || x - y;
    });
    var sizes = [], mine = [], i;
    for (i = 0; i < ranks; i++) sizes.push(0);
    for (i = 0; i < order.length; i++) {
      var rank = sizes.indexOf(Math.min.apply(null, sizes));
      sizes[rank] += numels[order[i]];
      if (rank === 0) mine.push(order[i]);
    }
    return mine.sort(function (x, y) { return x - y; });
  }

  function ddpBuckets(specs) {
    var perDtype = {}, total = 0;
    specs.forEach(function (p) {
      perDtype[p.itemsize] = (perDtype[p.itemsize] || 0) + p.nbytes;
    });
    for (var k in perDtype) total += R(perDtype[k]);
    return total;
  }

  function unitBytes(specs, indices, itemsize) {
    var total = 0;
    for (var i = 0; i < indices.length; i++) {
      var p = specs[indices[i]];
      total += R(p.numel * (itemsize || p.itemsize));
    }
    return total;
  }

  function range(n) {
    var out = [];
    for (var i = 0; i < n; i++) out.push(i);
    return out;
  }

  function holdings(t, optimizer, implementation, precision, sh) {
    sh = sharding(sh);
    checkSharding(sh, optimizer, precision);
    var N = sh.ranks, specs = t.specs;
    var offload = sh.offload, reshard = sh.reshard_after_forward;
    var mixed = precision === "bf16-mixed";
    var item = specs.length ? specs[0].itemsize : 4;
    var fsdp = sh.strategy === "fsdp2";
    var stepItem = mixed ? 4 : item, owned, i;
    if (sh.strategy === "single" || sh.strategy === "ddp") {
      owned = specs.map(function (p) {
        return Param(p.shape, stepItem, p.hidden);
      });
    } else if (sh.strategy === "zero-redundancy") {
      owned = zeroRedundancyPartition(specs.map(function (p) {
        return p.numel;
      }), N).map(function (k) {
        return Param(specs[k].shape, stepItem, specs[k].hidden);
      });
    } else if (fsdp) {
      owned = specs.map(function (p) {
        return Param(shardRows(p.shape, N), stepItem, p.hidden);
      });
    } else {
      owned = [Param([ceilDiv(sum(specs.map(function (p) {
        return p.numel;
      })), N)], stepItem)];
    }
    var fullGrads = sum(specs.map(function (p) { return R(p.nbytes); }));
    var state = stateBytes(optimizer, implementation, owned);
    var master = mixed && !fsdp ?
      sum(owned.map(function (p) { return R(p.numel * 4); })) : 0;
    var stepExtra = stepPeakExtra(optimizer, implementation, owned);
    var fp32Grads = master;
    var units = t.units.filter(function (u) { return u.length; });
    var inUnits = {};
    units.forEach(function (u) { u.forEach(function (k) { inUnits[k] = 1; }); });
    var root = range(specs.length).filter(function (k) { return !inUnits[k]; });
    var largest = Math.max.apply(null, [0].concat(units.map(function (u) {
      return unitBytes(specs, u);
    })));
    var params, gathered = 0, kept = 0, unitGrads = 0, shardedGrads = 0;
    if (fsdp) {
      var storedItem = mixed ? 4 : item;
      var local = specs.map(function (p) {
        return Param(shardRows(p.shape, N), storedItem, p.hidden);
      });
      params = sum(local.map(function (p) { return R(p.nbytes); }));
      var reduceItem = mixed ? (sh.reduce_dtype === "bf16" ? 2 : 4) : item;
      shardedGrads = sum(units.concat([root]).filter(function (u) {
        return u.length;
      }).map(function (u) {
        return R(sum(u.map(function (k) { return local[k].numel; })) *
          reduceItem);
      }));
      var padded = specs.map(function (p, k) {
        return p.shape.length ? Param([local[k].shape[0] * N].concat(
          p.shape.slice(1)), p.itemsize) : p;
      });
      if (reshard === false) kept = unitBytes(padded, range(specs.length));
      else if (reshard === true) kept = 0;
      else kept = unitBytes(padded, root);
      largest = Math.max.apply(null, [0].concat(units.map(function (u) {
        return unitBytes(padded, u);
      })));
      gathered = kept + 2 * largest;
      var biggest = root, most = -1;
      units.forEach(function (u) {
        var bytes = unitBytes(specs, u);
        if (bytes > most) { most = bytes; biggest = u; }
      });
      var rsInput = R(ceilDiv(sum(biggest.map(function (k) {
        return specs[k].numel;
      })), N) * N * reduceItem);
      unitGrads = unitBytes(specs, biggest) + rsInput;
    } else if (sh.strategy === "zero3") {
      params = sum(specs.map(function (p) {
        return R(ceilDiv(p.numel, N) * item);
      }));
      gathered = 2 * largest;
    } else {
      params = fullGrads;
    }
    params += t.fixed;
    var buffers = sh.strategy === "ddp" ||
      sh.strategy === "zero-redundancy" ? ddpBuckets(specs) : 0;
    var cpu = 0;
    if (offload !== "none") {
      cpu = state + master + fp32Grads + stepExtra;
      state = master = fp32Grads = stepExtra = 0;
      if (offload === "params") {
        cpu += params - t.fixed;
        params = t.fixed;
      }
    }
    var grads;
    if (fsdp) {
      grads = shardedGrads;
    } else if (sh.strategy === "zero2" || sh.strategy === "zero3") {
      grads = ceilDiv(fullGrads, N);
      unitGrads = largest;
    } else {
      grads = fullGrads;
      unitGrads = 0;
    }
    return { params: params, grads: grads, optimizer_state: state,
      master_weights: master, fp32_grads: fp32Grads, step: stepExtra,
      buffers: buffers, gathered: gathered, kept_gathered: kept,
      unit_grads: unitGrads, cpu: cpu, full_grads: fullGrads };
  }

  function perRank(t, optimizer, implementation, precision, sh) {
    var h = holdings(t, optimizer, implementation, precision, sh);
    var specs = t.specs, full = h.full_grads, i, k;
    function zeros() {
      var fam = {};
      for (var j = 0; j < FAMILIES.length; j++) fam[FAMILIES[j]] = 0;
      return fam;
    }
    function base() {
      var fam = zeros();
      fam.params = h.params;
      fam.optimizer_state = h.optimizer_state;
      fam.master_weights = h.master_weights;
      fam.buffers = h.buffers;
      fam.workspace = t.workspace;
      return fam;
    }
    var moments = [];
    for (i = 0; i < t.moments.length; i++) {
      var phase = t.moments[i][0], traced = t.moments[i][1], m = base();
      for (k in traced) m[k] = traced[k];
      m.params = h.params + h.gathered;
      if (h.grads !== full) {
        m.grads = ceilDiv(traced.grads * h.grads, full) +
          (phase === "backward" ? h.unit_grads : 0);
      }
      moments.push([phase, m]);
    }
    var labels = moments.map(function (m, j) {
      return (t.labels || [])[j] || "";
    });
    var kept = h.grads;
    var left = { activations: t.after.activations || 0,
      weight_copies: t.after.weight_copies || 0,
      transients: t.after.transients || 0 };
    function stepMoment(grads, transients) {
      var m = base();
      for (var key in left) m[key] = left[key];
      m.grads = grads;
      m.transients = left.transients + transients;
      moments.push(["optimizer step", m]);
    }
    if (h.fp32_grads) {
      labels.push(STEP_LABELS[0]);
      if (sh.strategy === "single" || sh.strategy === "ddp") {
        var last = specs.length ? R(specs[specs.length - 1].nbytes) : 0;
        stepMoment(h.fp32_grads + last, 0);
        kept = h.fp32_grads;
      } else {
        stepMoment(kept + h.fp32_grads, 0);
        kept += h.fp32_grads;
      }
    }
    labels.push(STEP_LABELS[1]);
    stepMoment(kept, h.step);
    function total(fam) {
      var t2 = 0;
      for (var j = 0; j < FAMILIES.length; j++) t2 += fam[FAMILIES[j]];
      return t2;
    }
    var best = 0;
    for (i = 1; i < moments.length; i++) {
      if (total(moments[i][1]) > total(moments[best][1])) best = i;
    }
    function families(fam) {
      var out = {};
      for (var j = 0; j < FAMILIES.length; j++) {
        out[FAMILIES[j]] = fam[FAMILIES[j]];
      }
      return out;
    }
    var fam = moments[best][1], breakdown = families(fam);
    var phases = {}, order = ["forward", "backward", "optimizer step"];
    var seen = {};
    for (i = 0; i < moments.length; i++) {
      var ph = moments[i][0], tot = total(moments[i][1]);
      seen[ph] = Math.max(seen.hasOwnProperty(ph) ? seen[ph] : 0, tot);
    }
    order.forEach(function (p) { if (seen.hasOwnProperty(p)) phases[p] = seen[p]; });
    return { peak: total(fam), phase: moments[best][0],
      breakdown: breakdown, phases: phases, persistent: total(base()),
      cpu: h.cpu, parameters: sum(specs.map(function (p) {
        return p.numel;
      })),
      moments: moments.map(function (m, j) {
        return { phase: m[0], label: labels[j], bytes: total(m[1]),
          breakdown: families(m[1]) };
      }),
      peak_index: best };
  }

  // ---- decoder families (snippets/memcalc/families.py, decoder.py) -----
  var MLPS = ["gelu", "swiglu"];
  var NORMS = ["layernorm", "rmsnorm"];
  var POSITIONS = ["learned", "rotary"];
  var DECODER = { kv_heads: 0, ffn: 0, mlp: "gelu", norm: "layernorm",
    linear_bias: true, qkv_bias: false, tied: true, positions: "learned",
    max_positions: 0, experts: 0, top_k: 0 };
  var STEP = { batch: 1, seq: 4096, optimizer: "adamw",
    precision: "bf16-mixed", implementation: "foreach",
    checkpointing: "none", micro_batches: 1, strategy: "single", ranks: 1,
    reshard_after_forward: null, reduce_dtype: "fp32", offload: "none" };

  function positive(names, o) {
    names.forEach(function (name) {
      var value = o[name];
      if (!Number.isInteger(value) || value < 1) {
        throw new Error(name + " must be a positive whole number, not " +
          value);
      }
    });
  }

  function checkDecoder(d) {
    positive(["vocab", "hidden", "layers", "heads"], d);
    if (d.hidden % d.heads) {
      throw new Error("hidden must be a multiple of heads");
    }
    if (d.kv_heads < 0 || (d.kv_heads && d.heads % d.kv_heads)) {
      throw new Error("kv_heads must divide heads");
    }
    if (d.ffn < 0 || d.max_positions < 0) {
      throw new Error("ffn and max_positions cannot be negative");
    }
    [["mlp", MLPS], ["norm", NORMS], ["positions", POSITIONS]].forEach(
      function (pair) {
        if (pair[1].indexOf(d[pair[0]]) < 0) {
          throw new Error("unknown " + pair[0] + " '" + d[pair[0]] +
            "'; choose one of " + pair[1].join(", "));
        }
      });
    if (d.positions === "learned" && d.max_positions < 1) {
      throw new Error("learned positions need max_positions");
    }
    if (d.experts < 0 || d.top_k < 0 ||
        (d.experts && !(1 <= d.top_k && d.top_k <= d.experts))) {
      throw new Error("top_k must be between 1 and experts");
    }
  }

  function parameterShapes(d) {
    checkDecoder(d);
    var h = d.hidden, f = d.ffn || 4 * h;
    var kv = (d.kv_heads || d.heads) * (h / d.heads);
    var qkv = d.linear_bias || d.qkv_bias;
    function linear(out, inp, bias) {
      return bias ? [[out, inp], [out]] : [[out, inp]];
    }
    function norm() {
      return d.norm === "layernorm" ? [[h], [h]] : [[h]];
    }
    function mlp() {
      var b = d.linear_bias;
      if (d.mlp === "gelu") return linear(f, h, b).concat(linear(h, f, b));
      return linear(f, h, b).concat(linear(f, h, b), linear(h, f, b));
    }
    var shapes = [[d.vocab, h]];
    if (d.positions === "learned") shapes.push([d.max_positions, h]);
    for (var i = 0; i < d.layers; i++) {
      var layer = linear(h, h, qkv).concat(linear(kv, h, qkv),
        linear(kv, h, qkv), linear(h, h, d.linear_bias));
      if (d.experts) {
        layer.push([d.experts, h]);
        for (var e = 0; e < d.experts; e++) layer = layer.concat(mlp());
      } else {
        layer = layer.concat(mlp());
      }
      shapes = shapes.concat(layer, norm(), norm());
    }
    shapes = shapes.concat(norm());
    if (!d.tied) shapes.push([d.vocab, h]);
    return shapes;
  }

  function decoderKernel(d, precision) {
    var half = precision !== "fp32", hd = d.hidden / d.heads;
    if (half && hd <= 256 && hd % 8 === 0) return "cudnn";
    if ((d.kv_heads || d.heads) === d.heads && hd % (half ? 8 : 4) === 0) {
      return "efficient";
    }
    return "math";
  }

  function decoderSpecs(d, precision) {
    var shapes = parameterShapes(d);
    var item = precision === "bf16" || precision === "bf16-mixed" ? 2 : 4;
    var learned = d.positions === "learned";
    var perLayer = Math.floor((shapes.length - 1 - (d.tied ? 0 : 1) -
      (d.norm === "layernorm" ? 2 : 1) - (learned ? 1 : 0)) / d.layers);
    var first = learned ? 2 : 1, units = [], i;
    for (i = 0; i < d.layers; i++) {
      units.push(range(perLayer).map(function (j) {
        return first + i * perLayer + j;
      }));
    }
    var last = shapes.length - 1;
    var params = shapes.map(function (s, j) {
      return Param(s, item, !(j < first || (!d.tied && j === last)));
    });
    return { params: params, units: units };
  }

  function traceDecoder(d, o) {
    checkDecoder(d);
    if (PRECISIONS.indexOf(o.precision) < 0) {
      throw new Error("unknown precision '" + o.precision +
        "'; choose one of " + PRECISIONS.join(", "));
    }
    if (o.checkpointing !== "none" && o.checkpointing !== "full") {
      throw new Error("decoder checkpointing: none or full");
    }
    positive(["batch", "seq", "micro_batches"], o);
    var sp = decoderSpecs(d, o.precision), params = sp.params;
    var units = sp.units;
    var b = o.batch, s = o.seq, h = d.hidden, L = d.layers, V = d.vocab;
    var T = b * s, kv = (d.kv_heads || d.heads) * (h / d.heads);
    var f = d.ffn || 4 * h, a = d.heads, hd = h / d.heads;
    var auto = o.precision === "bf16-autocast";
    var c = o.precision === "fp32" ? 4 : 2;
    var r = o.precision === "bf16" || o.precision === "bf16-mixed" ? 2 : 4;
    var k = decoderKernel(d, o.precision);
    var attention = 2 * R(T * 4);
    if (k === "math") {
      attention += 2 * R(T * h * 4) + R(b * a * s * s * 4);
    } else {
      attention += 2 * R(T * kv * c) + R(b * a * s * 4) +
        (k === "cudnn" ? 2 * R(8) : 0);
    }
    var dense = auto ? 6 * R(T * h * 4) + 3 * R(T * h * 2) :
      2 * R(T * h * 4) + 6 * R(T * h * c);
    var mlp;
    if (d.experts) {
      var routed = T * d.top_k;
      mlp = 4 * R(routed * f * c) + 2 * R(routed * h * c) +
        R(T * d.experts * c) + R(T * d.experts * 4);
    } else {
      mlp = 4 * R(T * f * c);
    }
    var layer = dense + attention + mlp, copies = 0;
    if (auto) {
      copies = sum(units[0].map(function (j) {
        var p = params[j];
        return p.shape.length === 2 ? R(p.numel * 2) : 0;
      }));
    }
    var ckpt = o.checkpointing === "full";
    var keptLayer = ckpt ? R(T * h * r) : layer;
    var tokens = 2 * R(T * 8) + R(b * (s + 1) * 8);
    var rotary = 2 * R(s * hd * (r === 4 ? 4 : 2));
    var final = R(T * h * 4) + 2 * R(T * h * r) + R(T * 4);
    var logits = R(T * V * c) + (c !== 4 ? R(T * V * 4) : 0);
    var logProbs = R(T * V * 4);
    var headCopy = auto ? R(V * h * 2) : 0;
    var paramBytes = sum(params.map(function (p) { return R(p.nbytes); }));
    var accumulated = o.micro_batches > 1 ? paramBytes : 0;
    var base = tokens + rotary + final;
    var moments = [], labels = [];
    function moment(phase, label, families) {
      var fam = { params: paramBytes, grads: 0, activations: 0,
        weight_copies: 0, transients: 0 };
      for (var key in families) fam[key] = families[key];
      labels.push(label);
      moments.push([phase, fam]);
    }
    moment("forward", "end of the forward pass: the loss",
      { grads: accumulated,
        activations: L * keptLayer + base + logits + logProbs,
        weight_copies: L * copies + headCopy });
    moment("backward", "start of the backward pass: the logits' gradients",
      { grads: accumulated,
        activations: L * keptLayer + base + logProbs,
        weight_copies: (ckpt ? 0 : L * copies) + headCopy,
        transients: R(4) + 2 * R(T * V * 4) });
    if (ckpt) {
      var layerGrads = sum(units[0].map(function (j) {
        return R(params[j].nbytes);
      }));
      moment("backward", "first layer's backward, recomputed",
        { grads: Math.max(accumulated, paramBytes - layerGrads),
          activations: L * keptLayer + layer + tokens + rotary,
          weight_copies: copies,
          transients: 2 * R(T * f * c) + R(T * h * r) });
    }
    var fixed = d.positions === "rotary" ? 2 * R(Math.floor(hd / 2) * 4) : 0;
    moments.forEach(function (m) { m[1].params += fixed; });
    return { moments: moments, specs: params, units: units, fixed: fixed,
      workspace: 2 * 32 * MIB + (d.linear_bias || d.qkv_bias ? MIB : 0),
      after: { activations: R(4) }, labels: labels };
  }

  // options: the decoder's shapes (DECODER) and the step's (STEP)
  function estimateDecoder(options) {
    function pick(defaults) {
      var out = {};
      for (var key in defaults) {
        out[key] = options.hasOwnProperty(key) ? options[key] : defaults[key];
      }
      return out;
    }
    var d = pick(withDefaults(DECODER, { vocab: 0, hidden: 0, layers: 0,
      heads: 0 })), o = pick(STEP);
    checkOptimizer(o.optimizer, o.implementation);
    var t = traceDecoder(d, o);
    var result = perRank(t, o.optimizer, o.implementation, o.precision, {
      strategy: o.strategy, ranks: o.ranks, offload: o.offload,
      reshard_after_forward: o.reshard_after_forward,
      reduce_dtype: o.reduce_dtype });
    result.kernel = decoderKernel(d, o.precision);
    return result;
  }

  function search(estimateOf, options, budget, limit) {
    function fits(batch) {
      var o = withDefaults(options, { batch: batch });
      return estimateOf(o).peak <= budget;
    }
    if (!fits(1)) return 0;
    var low = 1, high = 2;
    while (high <= limit && fits(high)) { low = high; high *= 2; }
    high = Math.min(high, limit + 1);
    while (high - low > 1) {
      var mid = Math.floor((low + high) / 2);
      if (fits(mid)) low = mid; else high = mid;
    }
    return low;
  }

  function largestMicroBatchDecoder(options, budget, limit) {
    return search(estimateDecoder, options, budget, limit || 65536);
  }

  function largestMicroBatch(options, budget, limit) {
    return search(estimate, options, budget, limit || 1048576);
  }

  // ---- the page's models: the presets of snippets/memcalc/families.py --
  function llama(vocab, hidden, layers, heads, kv, ffn, more) {
    return withDefaults({ vocab: vocab, hidden: hidden, layers: layers,
      heads: heads, kv_heads: kv, ffn: ffn, mlp: "swiglu", norm: "rmsnorm",
      linear_bias: false, qkv_bias: false, tied: false,
      positions: "rotary", max_positions: 0, experts: 0, top_k: 0 },
      more || {});
  }
  var PRESETS = {
    "gpt2": { label: "GPT-2 (124M)", seq: 1024, batch: 8,
      model: withDefaults(DECODER, { vocab: 50257, hidden: 768, layers: 12,
        heads: 12, max_positions: 1024 }) },
    "llama-3.2-1b": { label: "Llama-3.2-1B", seq: 4096, batch: 1,
      model: llama(128256, 2048, 16, 32, 8, 8192, { tied: true }) },
    "llama-2-7b": { label: "Llama-2-7B", seq: 4096, batch: 1,
      model: llama(32000, 4096, 32, 32, 0, 11008) },
    "llama-3-8b": { label: "Llama-3-8B", seq: 4096, batch: 1,
      model: llama(128256, 4096, 32, 32, 8, 14336) },
    "llama-3.1-70b": { label: "Llama-3.1-70B", seq: 4096, batch: 1,
      model: llama(128256, 8192, 80, 64, 8, 28672) },
    "mistral-7b": { label: "Mistral-7B", seq: 4096, batch: 1,
      model: llama(32000, 4096, 32, 32, 8, 14336) },
    "qwen2-7b": { label: "Qwen2-7B", seq: 4096, batch: 1,
      model: llama(152064, 3584, 28, 28, 4, 18944, { qkv_bias: true }) },
    "mixtral-8x7b": { label: "Mixtral-8x7B", seq: 4096, batch: 1,
      model: llama(32000, 4096, 32, 32, 8, 14336, { experts: 8,
        top_k: 2 }) }
  };

  /* The GPT-style closed form (transformer.py, the model the GPU run
   * checks) takes what it describes: GELU MLP of 4h, LayerNorm, biases,
   * learned positions (one row per token of the sequence), a tied head,
   * no experts. Every other shape goes to the decoder families' form. */
  function gptStyle(d) {
    return d.mlp === "gelu" && d.norm === "layernorm" && d.linear_bias &&
      d.tied && d.positions === "learned" && !d.experts &&
      (!d.ffn || d.ffn === 4 * d.hidden);
  }

  // options: a model (DECODER's fields), the step, attention, strategy
  // ("": DDP over ranks > 1, else one GPU), ranks and offload
  function route(options) {
    if (gptStyle(options)) {
      var t = {};
      ["layers", "hidden", "heads", "kv_heads", "vocab", "seq", "batch",
        "optimizer", "precision", "implementation", "attention",
        "checkpointing", "micro_batches", "ranks", "strategy", "offload"]
        .forEach(function (k) { if (k in options) t[k] = options[k]; });
      return { form: "GPT-style", estimate: estimate, options: t,
        largest: largestMicroBatch };
    }
    if (options.attention && options.attention !== "sdpa") {
      throw new Error("eager attention: the GPT-style closed form only " +
        "(GELU, LayerNorm, biases, learned positions, tied head)");
    }
    var o = withDefaults(options, {
      strategy: options.strategy || (options.ranks > 1 ? "ddp" : "single"),
      max_positions: options.positions === "learned" ? options.seq : 0 });
    delete o.attention;
    return { form: "decoder", estimate: estimateDecoder, options: o,
      largest: largestMicroBatchDecoder };
  }

  function answer(options) {
    var r = route(options), result = r.estimate(r.options);
    result.form = r.form;
    return result;
  }

  function largestFor(options, budget) {
    var r = route(options);
    return r.largest(r.options, budget, 65536);
  }

  var api = { estimate: estimate, largestMicroBatch: largestMicroBatch,
    estimateDecoder: estimateDecoder,
    largestMicroBatchDecoder: largestMicroBatchDecoder,
    parameterShapes: parameterShapes, PRESETS: PRESETS, answer: answer,
    largestFor: largestFor, gptStyle: gptStyle,
    stepPeakExtra: stepPeakExtra, stateBytes: stateBytes,
    paramList: paramList, Param: Param, FAMILIES: FAMILIES,
    OPTIMIZERS: OPTIMIZERS, IMPLEMENTATIONS: IMPLEMENTATIONS,
    PRECISIONS: PRECISIONS, CHECKPOINTING: CHECKPOINTING,
    ATTENTION: ATTENTION };
  if (typeof module !== "undefined" && module.exports) {
    module.exports = api;
    return;
  }
  root.memcalc = api;

  // ---- the form on the page -------------------------------------------
  // [name, label, blank (what an empty field means) or undefined]
  var GROUPS = [
    ["The model", [["preset"], ["layers", "Layers"], ["hidden", "Hidden size"],
      ["heads", "Heads"], ["kv_heads", "KV heads (blank: all)", 0],
      ["vocab", "Vocabulary"], ["ffn", "FFN size (blank: 4 × hidden)", 0],
      ["mlp", "MLP", ["gelu", "swiglu"]],
      ["norm", "Norm", ["layernorm", "rmsnorm"]],
      ["biases", "Biases", ["all", "q, k, v only", "none"]],
      ["positions", "Positions", ["learned", "rotary"]],
      ["head", "Output head", ["tied", "untied"]],
      ["experts", "Experts (blank: none)", 0],
      ["top_k", "Experts per token", 0]]],
    ["The training step", [["seq", "Sequence"], ["batch", "Micro-batch"],
      ["micro_batches", "Accumulation steps"],
      ["optimizer", "Optimizer", OPTIMIZERS],
      ["implementation", "Step implementation", IMPLEMENTATIONS],
      ["precision", "Precision", PRECISIONS],
      ["attention", "Attention", ATTENTION],
      ["checkpointing", "Checkpointing", CHECKPOINTING]]],
    ["The GPUs", [["ranks", "Data-parallel ranks"],
      ["strategy", "Sharding", [["", "DDP (or one GPU)"],
        ["zero-redundancy", "ZeroRedundancyOptimizer"], ["zero1", "ZeRO-1"],
        ["zero2", "ZeRO-2"], ["zero3", "ZeRO-3"],
        ["fsdp2", "FSDP2 fully_shard"]]],
      ["offload", "CPU offload", OFFLOAD],
      ["budget", "Budget per GPU (GiB)"]]]
  ];
  var SHAPES = ["layers", "hidden", "heads", "kv_heads", "vocab", "ffn",
    "mlp", "norm", "biases", "positions", "head", "experts", "top_k"];
  var COLOURS = { params: "#5c6bc0", grads: "#2e7d32",
    optimizer_state: "#c62828", master_weights: "#f9a825",
    activations: "#00838f", weight_copies: "#6d4c41",
    transients: "#8e24aa", buffers: "#ef6c00", workspace: "#9e9e9e" };
  var LABELS = { params: "parameters", grads: "gradients",
    optimizer_state: "optimizer state", master_weights: "master weights",
    activations: "activations", weight_copies: "autocast weight copies",
    transients: "transients", buffers: "communication buffers",
    workspace: "cuBLAS workspace" };
  var STYLE = [
    ".memcalc-group{border:0;margin:0 0 .4rem;padding:0;min-width:0}",
    ".memcalc-group legend{font-size:.72rem;font-weight:700;padding:0;",
    "margin-bottom:.3rem}",
    ".memcalc-form{margin:1rem 0}",
    ".memcalc-fields{display:grid;gap:.6rem .9rem;",
    "grid-template-columns:repeat(auto-fill,minmax(8rem,1fr))}",
    ".memcalc-form label{display:flex;flex-direction:column;",
    "font-size:.72rem;gap:.15rem}",
    ".memcalc-form input,.memcalc-form select{font:inherit;",
    "font-size:.8rem;padding:0 .3rem;min-width:0;height:1.8rem;",
    "box-sizing:border-box;",
    "color:var(--md-default-fg-color);",
    "background:var(--md-default-bg-color);",
    "border:1px solid var(--md-default-fg-color--lighter);",
    "border-radius:.2rem}",
    ".memcalc-form :focus-visible{outline:2px solid ",
    "var(--md-accent-fg-color);outline-offset:1px}",
    ".memcalc-form [aria-invalid=true]{border-color:#c62828}",
    ".memcalc-msg{color:#c62828;font-size:.68rem;min-height:0}",
    "[data-md-color-scheme=slate] .memcalc-msg{color:#ef9a9a}",
    ".memcalc-out{font-size:.8rem}",
    ".memcalc-bar{display:flex;width:100%;height:1.6rem;",
    "border-radius:.2rem;overflow:hidden;margin:.4rem 0}",
    ".memcalc-bar span{display:block;height:100%}",
    ".md-typeset ul.memcalc-legend{display:flex;flex-wrap:wrap;",
    "gap:.2rem 1.2rem;list-style:none;margin:0 0 .6rem;padding:0}",
    ".md-typeset ul.memcalc-legend li{margin:0;list-style:none}",
    ".memcalc-swatch{display:inline-block;width:.7rem;height:.7rem;",
    "margin-right:.3rem;vertical-align:middle;border-radius:.1rem}",
    "@media print{.memcalc-form{display:none}}"
  ].join("");

  function gib(n) {
    if (n < 1073741824) return (n / MIB).toFixed(1) + " MiB";
    return (n / 1073741824).toFixed(2) + " GiB";
  }

  function element(tag, attrs, text) {
    var el = document.createElement(tag);
    for (var key in attrs) el.setAttribute(key, attrs[key]);
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function build(host) {
    var style = element("style", {});
    style.textContent = STYLE;
    host.appendChild(style);
    var form = element("form", { "class": "memcalc-form",
      "aria-label": "Memory calculator inputs" });
    var controls = {}, blanks = {};
    GROUPS.forEach(function (group) {
      var set = element("fieldset", { "class": "memcalc-group" });
      set.appendChild(element("legend", {}, group[0]));
      var grid = element("div", { "class": "memcalc-fields" });
      set.appendChild(grid);
      group[1].forEach(function (spec) {
        var name = spec[0], control;
        if (name === "preset") {
          control = element("select", {});
          Object.keys(PRESETS).forEach(function (key) {
            control.appendChild(element("option", { value: key },
              PRESETS[key].label));
          });
          control.appendChild(element("option", { value: "custom" },
            "custom"));
          spec = [name, "Preset"];
        } else if (Array.isArray(spec[2])) {
          control = element("select", {});
          spec[2].forEach(function (v) {
            var pair = Array.isArray(v) ? v : [v, v];
            control.appendChild(element("option", { value: pair[0] },
              pair[1]));
          });
        } else {
          control = element("input", { type: "text",
            inputmode: name === "budget" ? "decimal" : "numeric" });
          if (spec.length > 2) blanks[name] = spec[2];
        }
        var wrap = element("label", {}, spec[1]);
        control.id = "memcalc-" + name;
        control.name = name;
        wrap.appendChild(control);
        var msg = element("span", { "class": "memcalc-msg",
          "aria-live": "polite", id: "memcalc-" + name + "-msg" });
        control.setAttribute("aria-describedby", msg.id);
        wrap.appendChild(msg);
        grid.appendChild(wrap);
        controls[name] = control;
      });
      form.appendChild(set);
    });
    host.appendChild(form);
    var out = element("div", { "class": "memcalc-out", "aria-live": "polite",
      id: "memcalc-result" });
    host.appendChild(out);

    function apply(name) {
      var p = PRESETS[name], d = p.model;
      ["layers", "hidden", "heads", "kv_heads", "vocab", "ffn", "experts",
        "top_k"].forEach(function (k) {
        controls[k].value = d[k] ? String(d[k]) : "";
      });
      controls.mlp.value = d.mlp;
      controls.norm.value = d.norm;
      controls.biases.value = d.linear_bias ? "all" :
        (d.qkv_bias ? "q, k, v only" : "none");
      controls.positions.value = d.positions;
      controls.head.value = d.tied ? "tied" : "untied";
      controls.seq.value = String(p.seq);
      controls.batch.value = String(p.batch);
    }
    apply("gpt2");
    controls.micro_batches.value = "1";
    controls.ranks.value = "1";
    controls.budget.value = "80";
    controls.optimizer.value = "adamw";
    controls.precision.value = "bf16-autocast";
    controls.preset.addEventListener("change", function () {
      if (PRESETS[controls.preset.value]) apply(controls.preset.value);
      update();
    });
    // Only the model's own shapes make it another model: the sequence, the
    // micro-batch, accumulation and ranks are the step's, not the model's.
    function changed(event) {
      if (SHAPES.some(function (name) {
        return controls[name] === event.target;
      })) controls.preset.value = "custom";
      if (event.target !== controls.preset) update();
    }
    form.addEventListener("input", changed);
    form.addEventListener("change", changed);
    form.addEventListener("submit", function (e) { e.preventDefault(); });

    function flag(name, message) {
      document.getElementById("memcalc-" + name + "-msg").textContent =
        message || "";
      controls[name].setAttribute("aria-invalid", message ? "true" : "false");
    }

    function read() {
      var o = {}, bad = false;
      Object.keys(controls).forEach(function (name) {
        var control = controls[name], text = control.value.trim();
        flag(name);
        if (control.tagName === "SELECT" || name === "budget") {
          o[name] = control.value;
          return;
        }
        if (text === "" && name in blanks) {
          o[name] = blanks[name];
          return;
        }
        var value = Number(text);
        if (text === "" || !Number.isInteger(value) || value < 1 ||
            value > 1e9) {
          flag(name, "a whole number from 1");
          bad = true;
        } else {
          o[name] = value;
        }
      });
      o.budget = null;
      var budgetText = controls.budget.value.trim();
      if (budgetText !== "") {
        var gibs = Number(budgetText);
        if (!isFinite(gibs) || gibs <= 0) {
          flag("budget", "GiB, a number above 0");
          bad = true;
        } else {
          o.budget = Math.floor(gibs * 1073741824);
        }
      }
      if (bad) return null;
      o.linear_bias = o.biases === "all";
      o.qkv_bias = o.biases === "q, k, v only";
      o.tied = o.head === "tied";
      ["preset", "biases", "head"].forEach(function (k) { delete o[k]; });
      return o;
    }

    // an error's words -> the field it belongs to (the last match wins)
    var FIELD_OF = [["kv", "kv_heads"], ["multiple of heads", "heads"],
      ["ffn", "ffn"], ["top_k", "top_k"], ["fused", "implementation"],
      ["strategy", "strategy"], ["ZeRO", "strategy"], ["shards", "strategy"],
      ["fsdp2", "strategy"], ["offload", "offload"],
      ["checkpointing", "checkpointing"], ["eager", "attention"],
      ["autocast", "precision"]];

    function update() {
      var options = read();
      out.textContent = "";
      if (!options) {
        out.appendChild(element("p", {}, "Fix the marked fields."));
        return;
      }
      var budget = options.budget, result, best = null;
      delete options.budget;
      try {
        result = answer(options);
        if (budget) best = largestFor(options, budget);
      } catch (error) {
        var where = "layers";
        FIELD_OF.forEach(function (pair) {
          if (error.message.indexOf(pair[0]) >= 0) where = pair[1];
        });
        flag(where, error.message);
        out.appendChild(element("p", {}, "Fix the marked fields."));
        return;
      }
      var worst = Math.max(result.peak, budget || 0);
      if (!(worst < 9007199254740991)) {
        flag("batch", "too large to count exactly");
        out.appendChild(element("p", {}, "Fix the marked fields."));
        return;
      }
      draw(result, budget, best, options);
    }

    function draw(result, budget, best, options) {
      var head = element("p", {});
      head.appendChild(element("strong", { id: "memcalc-peak",
        "data-value": String(result.peak) }, "Peak " + gib(result.peak)));
      var when = result.phase === "optimizer step" ? "the optimizer step" :
        "the " + result.phase + " pass";
      head.appendChild(document.createTextNode(
        " during " + when + " (" +
        result.moments[result.peak_index].label + "); " +
        gib(result.persistent) + " persist between steps" +
        (result.cpu ? ", " + gib(result.cpu) + " on the CPU per rank" : "") +
        ". "));
      head.appendChild(element("span", { id: "memcalc-parameters",
        "data-value": String(result.parameters) },
        result.parameters.toLocaleString("en")));
      head.appendChild(document.createTextNode(" parameters, attention " +
        result.kernel + "; closed form: " + (result.form === "GPT-style" ?
          "GPT-style, checked on the GPU" : "decoder families") + "."));
      out.appendChild(head);
      var bar = element("div", { "class": "memcalc-bar", role: "img",
        "aria-label": "Breakdown of the peak: " + FAMILIES.filter(
          function (k) { return result.breakdown[k]; }).map(function (k) {
          return LABELS[k] + " " + gib(result.breakdown[k]);
        }).join(", ") });
      var legend = element("ul", { "class": "memcalc-legend" });
      FAMILIES.forEach(function (key) {
        var bytes = result.breakdown[key];
        if (!bytes) return;
        var seg = element("span", { title: LABELS[key] + ": " + gib(bytes) });
        seg.style.width = (100 * bytes / result.peak).toFixed(3) + "%";
        seg.style.background = COLOURS[key];
        bar.appendChild(seg);
        var item = element("li", {});
        var swatch = element("span", { "class": "memcalc-swatch" });
        swatch.style.background = COLOURS[key];
        item.appendChild(swatch);
        item.appendChild(document.createTextNode(
          LABELS[key] + " " + gib(bytes)));
        legend.appendChild(item);
      });
      out.appendChild(bar);
      out.appendChild(legend);
      out.appendChild(element("p", {}, "Largest moment of each phase: " +
        Object.keys(result.phases).map(function (k) {
          return k + " " + gib(result.phases[k]);
        }).join(", ") + "."));
      if (budget) {
        out.appendChild(element("p", { id: "memcalc-largest",
          "data-value": String(best) }, "Budget " + gib(budget) + ": " +
          (result.peak <= budget ? "fits" : "does not fit") + "; " +
          (best ? "the largest micro-batch that fits is " + best +
            " sequence" + (best === 1 ? "" : "s") + " of " + options.seq +
            " tokens." : "no micro-batch fits.")));
      }
    }
    update();
  }

  function start() {
    var host = document.getElementById("memcalc");
    if (host && !host.getAttribute("data-ready")) {
      host.setAttribute("data-ready", "true");
      build(host);
    }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})(this);
