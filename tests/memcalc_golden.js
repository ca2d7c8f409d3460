// Run docs/assets/javascripts/memcalc.js against tests/golden/memcalc.json
// (node tests/memcalc_golden.js): print the cases where they disagree.
// A case with "form": "decoder" is the decoder families' closed form.
"use strict";
const path = require("path");
const calc = require(path.join(__dirname, "..", "docs", "assets",
  "javascripts", "memcalc.js"));
const golden = require(path.join(__dirname, "golden", "memcalc.json"));

// moments as [phase, label, bytes, [families]] (tests/memcalc_golden.py)
function compact(result) {
  if (!result || !result.moments) return result;
  const out = Object.assign({}, result);
  out.moments = result.moments.map((m) => [m.phase, m.label, m.bytes,
    calc.FAMILIES.map((k) => m.breakdown[k])]);
  return out;
}

const bad = [];
golden.cases.forEach((c, i) => {
  const decoder = c.form === "decoder";
  let got;
  try {
    if ("budget" in c) {
      got = decoder ? calc.largestMicroBatchDecoder(c.input, c.budget) :
        calc.largestMicroBatch(c.input, c.budget);
    } else {
      got = compact(decoder ? calc.estimateDecoder(c.input) :
        calc.estimate(c.input));
    }
  } catch (error) {
    got = { error: error.message };
  }
  let want = "error" in c ? { error: c.error } :
    ("budget" in c ? c.largest : c.output);
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    bad.push({ index: i, input: c.input, want: want, got: got });
  }
});
console.log(JSON.stringify({ cases: golden.cases.length, bad: bad }));
