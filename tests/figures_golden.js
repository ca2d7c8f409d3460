// Run each module of docs/assets/javascripts/figures/ against its golden file
// in tests/golden/figures/ (node tests/figures_golden.js [golden dir]): every
// number compute() returns must equal the Python's to the last bit.
"use strict";
const fs = require("fs");
const path = require("path");

const dir = process.argv[2] || path.join(__dirname, "golden", "figures");
const modules = path.join(__dirname, "..", "docs", "assets", "javascripts",
  "figures");

// The first difference between a and b, as a path ("rows.3.m"), or null.
function differ(a, b, where) {
  if (typeof a === "number" && typeof b === "number") {
    return Object.is(a, b) ? null : where;
  }
  if (Array.isArray(a) !== Array.isArray(b) || typeof a !== typeof b ||
      a === null || b === null || typeof a !== "object") {
    return a === b ? null : where;
  }
  const keys = new Set(Object.keys(a).concat(Object.keys(b)));
  for (const k of keys) {
    if (!(k in a) || !(k in b)) return where + "." + k;
    const d = differ(a[k], b[k], where ? where + "." + k : k);
    if (d !== null) return d;
  }
  return null;
}

const report = { figures: {}, bad: [] };
for (const file of fs.readdirSync(dir).filter((f) => f.endsWith(".json"))) {
  const name = file.slice(0, -5);
  const figure = require(path.join(modules, name + ".js"));
  const golden = JSON.parse(fs.readFileSync(path.join(dir, file), "utf8"));
  report.figures[name] = golden.cases.length;
  golden.cases.forEach((c, i) => {
    let where;
    try {
      where = differ(figure.compute(c.input), c.output, "");
    } catch (error) {
      where = "error: " + error.message;
    }
    if (where !== null) report.bad.push({ figure: name, index: i, at: where });
  });
}
console.log(JSON.stringify(report));
