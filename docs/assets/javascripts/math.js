// Typeset every formula pymdownx.arithmatex marked (generic mode) with the KaTeX the site serves.
// document$ is Material's page observable, so this also runs after instant navigation.
document$.subscribe(function () {
  document.querySelectorAll(".arithmatex").forEach(function (el) {
    var tex = el.textContent.trim();
    var display = el.tagName === "DIV";
    // arithmatex wraps inline math in \( \) and display math in \[ \]
    tex = tex.replace(/^\\[\(\[]/, "").replace(/\\[\)\]]$/, "");
    katex.render(tex, el, { displayMode: display, throwOnError: false });
  });
});
