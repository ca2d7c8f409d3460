"""MkDocs hook: keep raw LaTeX and code listings out of the search index and its previews,
and let a chapter rank first for its own topic.

pymdownx.arithmatex leaves formulas in the page as `\\(\\theta_t\\)` for KaTeX to typeset in the
browser; Material's search would index (and preview) that source. Each formula is marked
`data-search-exclude`, and a plain-text rendering of it (θ_t) follows in a span that only the
search index reads (site.css hides it; KaTeX's own MathML serves screen readers).

Code blocks are left out of the index too: a doctest that names AdamW twenty times would
otherwise outrank the chapter that explains it. Inline code in sentences stays searchable. A
chapter page (its navigation title starts "N · ") gets a search boost, and its topic words
(`extra.search_topics` in mkdocs.yml) become its search tags, which Material's index weighs
above titles: "ZeRO" finds chapter 8 before the pages that say "zero" or "zeros".
"""

from __future__ import annotations

import html
import re

MATH = re.compile(r'<(?P<tag>span|div) class="arithmatex">(?P<tex>.*?)</(?P=tag)>', re.DOTALL)
CODE_BLOCK = re.compile(r'<div class="(?P<cls>(?:language-\w+ )?highlight)"')
CHAPTER_TITLE = re.compile(r"^(?:\d+[a-z]?|[A-Z]) · ")
CHAPTER_BOOST = 4

SYMBOLS = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "varepsilon": "ε",
    "eta": "η", "theta": "θ", "lambda": "λ", "mu": "μ", "nu": "ν", "pi": "π", "rho": "ρ",
    "sigma": "σ", "tau": "τ", "phi": "φ", "psi": "ψ", "omega": "ω", "Delta": "Δ", "Psi": "Ψ",
    "nabla": "∇", "sqrt": "√", "cdot": "·", "times": "×", "leftarrow": "←", "rightarrow": "→",
    "to": "→", "approx": "≈", "le": "≤", "leq": "≤", "ge": "≥", "geq": "≥", "neq": "≠",
    "sum": "Σ", "infty": "∞", "odot": "⊙", "lceil": "⌈", "rceil": "⌉", "lfloor": "⌊",
    "rfloor": "⌋", "ldots": "…", "dots": "…", "in": "∈", "propto": "∝", "pm": "±",
    "lVert": "‖", "rVert": "‖", "Vert": "‖", "lvert": "|", "rvert": "|", "mid": "|",
}
DROP = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg|mathrm|text|mathbf|operatorname|underbrace|"
                  r"quad|qquad|displaystyle|,|;|!)(?![a-zA-Z])")


def plain(tex: str) -> str:
    """A readable one-line approximation of a formula: θ ← θ − γ·(g + λθ)."""
    text = tex.strip()
    text = re.sub(r"^\\[(\[]|\\[)\]]$", "", text).strip()
    text = re.sub(r"\\(?:hat|widehat)\s*\{?\s*([a-zA-Z])\s*\}?", "\\1\u0302", text)
    for _ in range(4):  # innermost first: \sqrt{x} -> √(x), \frac{a}{b} -> (a)/(b)
        text = re.sub(r"\\sqrt\{([^{}]*)\}", r"√(\1)", text)
        text = re.sub(r"\\[td]?frac\{([^{}]*)\}\{([^{}]*)\}", r"(\1)/(\2)", text)
    text = DROP.sub(" ", text)
    text = re.sub(r"\\([a-zA-Z]+)", lambda m: SYMBOLS.get(m[1], m[1]), text)
    text = text.replace("{", "").replace("}", "").replace("&", " ").replace("\\\\", " ")
    return " ".join(text.split())


def _replace(match: re.Match) -> str:
    tag, tex = match["tag"], match["tex"]
    words = html.escape(plain(html.unescape(tex)), quote=False)
    return (f'<{tag} class="arithmatex" data-search-exclude>{tex}</{tag}>'
            f'<span class="search-only">{words}</span>')


def on_page_markdown(markdown: str, page, config, files) -> str:
    if CHAPTER_TITLE.match(page.title or ""):
        page.meta.setdefault("search", {}).setdefault("boost", CHAPTER_BOOST)
    topics = (config.extra.get("search_topics") or {}).get(page.file.src_uri)
    if topics:
        page.meta["tags"] = [str(t) for t in topics]
    return markdown


def on_page_content(html_text: str, page, config, files) -> str:
    html_text = CODE_BLOCK.sub(lambda m: f'<div class="{m["cls"]}" data-search-exclude', html_text)
    return MATH.sub(_replace, html_text)
