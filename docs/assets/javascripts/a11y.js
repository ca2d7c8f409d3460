/* Keyboard and screen-reader fixes the theme leaves out (tests/test_browser.py audits every
 * page with axe-core and tabs through one with the keyboard alone).
 *
 * 1. Every region that scrolls (a wide table or equation, a long code line on a phone, a
 *    notebook cell) can be reached with Tab, so that the arrow keys can scroll it: it gets
 *    tabindex="0", and a role and name when it is not code ("Table (scrollable)"); site.css draws
 *    its focus ring. A region that stops scrolling (a wider window) leaves the Tab order again.
 * 2. The search dialog has a name ("Search").
 *
 * Plain JavaScript, nothing fetched; runs on load, on resize, and when a fold opens or a tab
 * changes (what was hidden can scroll once shown).
 */
(function () {
  "use strict";

  var MARK = "data-scroll-focus";   // "on" where this script made a region focusable
  var NAMED = "data-scroll-named";  // and gave it the role and name below
  var FOCUSABLE = "a[href], button, input, select, textarea, summary, " +
    "[tabindex]:not([tabindex='-1'])";

  function scrolls(el) {
    if (el.scrollWidth <= el.clientWidth + 1 &&
        el.scrollHeight <= el.clientHeight + 1) return false;
    var style = getComputedStyle(el);
    var x = el.scrollWidth > el.clientWidth + 1 &&
      /auto|scroll/.test(style.overflowX);
    var y = el.scrollHeight > el.clientHeight + 1 &&
      /auto|scroll/.test(style.overflowY);
    return x || y;
  }

  function kind(el) {
    if (el.querySelector("table")) return "Table";
    if (el.closest(".arithmatex") || el.querySelector(".katex")) return "Equation";
    if (el.matches("code, pre") || el.querySelector("pre, code")) return "Code";
    return "Region";
  }

  // Inside these nothing scrolls on its own (code tokens, KaTeX's boxes, a figure's shapes):
  // look at the element, not at its thousands of descendants.
  var LEAF = "code, .katex, svg";

  function consider(el) {
    var ours = el.hasAttribute(MARK);
    if (!ours && el.hasAttribute("tabindex")) return;   // the theme's own (pre > code)
    if (!ours && el.matches(FOCUSABLE)) return;
    var on = scrolls(el);
    if (on === (ours && el.getAttribute(MARK) === "on")) return;
    if (!on) {
      if (!ours) return;
      el.removeAttribute("tabindex");
      el.setAttribute(MARK, "off");
      if (el.hasAttribute(NAMED)) {
        el.removeAttribute("role");
        el.removeAttribute("aria-label");
        el.removeAttribute(NAMED);
      }
      return;
    }
    el.setAttribute("tabindex", "0");
    el.setAttribute(MARK, "on");
    // Code reads as itself; anything else gets a role and a name to announce.
    var what = kind(el);
    if (what !== "Code" && !el.hasAttribute("role")) {
      el.setAttribute("role", "group");
      el.setAttribute("aria-label", what + " (scrollable)");
      el.setAttribute(NAMED, "");
    }
  }

  function visit(parent) {
    for (var el = parent.firstElementChild; el; el = el.nextElementSibling) {
      consider(el);
      if (!el.matches(LEAF)) visit(el);
    }
  }

  function mark() {
    var content = document.querySelector(".md-content");
    if (content) visit(content);
  }

  function nameSearch() {
    var dialog = document.querySelector(".md-search[role='dialog']");
    if (dialog && !dialog.hasAttribute("aria-label") &&
        !dialog.hasAttribute("aria-labelledby")) {
      dialog.setAttribute("aria-label", "Search");
    }
  }

  var pending = false;
  function soon() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(function () {
      pending = false;
      mark();
    });
  }

  function start() {
    nameSearch();
    mark();
    window.addEventListener("resize", soon);
    // toggle does not bubble: listen in the capture phase for every fold on the page
    document.addEventListener("toggle", mark, true);
    document.addEventListener("change", soon);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
