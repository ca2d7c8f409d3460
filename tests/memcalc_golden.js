// Run docs/assets/javascripts/memcalc.js against tests/golden/memcalc.json
// (node tests/memcalc_golden.js): print the cases where they disagree.
"use strict";
const path = require("path");
const calc = require(path.join(__dirname, "..", "docs", "assets",
  "javascripts", "memcalc.js"));
const golden = require(path.join(__dirname, "golden", "memcalc.json"));

const bad = [];
golden.cases.forEach((c, i) => {
  let got;
  try {
    if ("budget" in c) got = calc.largestMicroBatch(c.input, c.budget);
    else got = calc.estimate(c.input);
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
