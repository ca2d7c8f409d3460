"""MkDocs hook: the runnable notebook, as a page and as a self-contained download.

`docs/notebooks/<name>.py` is a jupytext percent file; mkdocs-jupyter renders it as a page. Its
cells import the repository's `snippets` package, which a reader who downloads the notebook
does not have. This hook:

* writes `notebooks/<name>.ipynb` into the site: the same cells, and before the first cell that
  imports a snippets module, one cell per module holding that file's source as it is at build
  time (dependencies first), headed `%%as_module snippets/<module>.py`. A small cell magic,
  defined once before them, runs each such cell as the module it names, in its own namespace,
  and registers it in `sys.modules`, so the `from snippets.x import y` lines below it run
  unchanged: whole modules (two modules define a `gradients` of their own, so pasting functions
  into one namespace would not do), nothing written to the reader's disk, tracebacks that show
  the bundled lines. The source is read from the same files the pages include, so the download
  cannot drift from the site;
* on the page: puts a download link under the title; typesets the notebook's `$...$` and
  `$$...$$` math with the site's KaTeX (it marks them up as pymdownx.arithmatex does, for
  assets/javascripts/math.js and for hooks/search_text.py, which must run after this hook);
  drops nbconvert's MathJax and mermaid script blocks, which name CDNs; turns links to `.md`
  pages into the pages' URLs (hooks/page_checks.py has already checked them, anchors too);
  keeps code and prompts out of the search index, as hooks/search_text.py does for the other
  pages.
"""

from __future__ import annotations

import ast
import posixpath
import re
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import jupytext
import nbformat
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File
from mkdocs.utils import get_relative_url

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_SOURCE = re.compile(r"^notebooks/[^/]+\.py$")
PACKAGE = "snippets"
SECTION_MARKER = re.compile(r"^[ \t]*# --8<-- \[(?:start|end):[\w-]+\][ \t]*\n?$", re.MULTILINE)
MAGIC = "as_module"

INTRO = f"""\
**This copy carries its own code.** On the site, the cells below import the repository's
`{PACKAGE}` package. This downloaded notebook brings each module it imports instead: a cell
that starts with `%%{MAGIC} {PACKAGE}/<module>.py` holds that file as it was when the notebook
was built, and runs it as the module `{PACKAGE}.<module>`, so the imports that follow work
unchanged. The next cell defines that magic; it needs a Jupyter (IPython) kernel and
torch 2.7 or later, nothing else."""

HELPER = f'''\
# Defines the cell magic %%{MAGIC}: run a cell as the module it names, in
# its own namespace, registered so that `from {PACKAGE}.x import y` finds
# it (as if the repository were installed). Nothing is written to disk.
import linecache
import sys
import types

from IPython.core.magic import register_cell_magic


@register_cell_magic
def {MAGIC}(line, cell):
    path = line.strip()  # e.g. {PACKAGE}/accounting.py
    name = path.removesuffix(".py").replace("/", ".")
    package, _, leaf = name.rpartition(".")
    if package not in sys.modules:  # the package itself, empty
        sys.modules[package] = types.ModuleType(package)
        sys.modules[package].__path__ = []
    module = types.ModuleType(name)
    module.__file__ = path
    # Tracebacks show this cell's lines, under the file's name.
    linecache.cache[path] = (len(cell), None, cell.splitlines(True), path)
    sys.modules[name] = module
    exec(compile(cell, path, "exec"), module.__dict__)
    setattr(sys.modules[package], leaf, module)
'''


# --- The self-contained notebook ----------------------------------------------------------

def module_file(module: str, root: Path = ROOT) -> Path:
    return root.joinpath(*module.split(".")).with_suffix(".py")


def snippet_imports(source: str, root: Path = ROOT) -> list[str]:
    """The snippets modules a piece of code imports, in order of first mention.

    `from snippets.x import y`, `import snippets.x` and `from snippets import x` (when x is a
    module) all count; imports inside functions too.
    """
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == PACKAGE:
                names = [f"{PACKAGE}.{a.name}" for a in node.names
                         if module_file(f"{PACKAGE}.{a.name}", root).is_file()]
            elif node.module.startswith(PACKAGE + "."):
                names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith(PACKAGE + ".")]
        found += [n for n in names if n not in found]
    return found


def modules_in_order(modules: list[str], root: Path = ROOT) -> list[str]:
    """`modules` and every snippets module they import, each after its dependencies."""
    ordered: list[str] = []

    def visit(module: str, path: tuple[str, ...]) -> None:
        if module in ordered:
            return
        if module in path:
            raise PluginError(f"hooks/notebook.py: circular import {' -> '.join(path + (module,))}")
        file = module_file(module, root)
        if not file.is_file():
            raise PluginError(f"hooks/notebook.py: no {file.relative_to(root)} for 'import {module}'")
        for dependency in snippet_imports(file.read_text(encoding="utf-8"), root):
            visit(dependency, path + (module,))
        ordered.append(module)

    for module in modules:
        visit(module, ())
    return ordered


def bundled_source(module: str, root: Path = ROOT) -> str:
    """The module's file as the pages include it, less the include markers."""
    text = module_file(module, root).read_text(encoding="utf-8")
    return SECTION_MARKER.sub("", text).rstrip("\n")


def self_contained(source: Path, root: Path = ROOT, rewrite_link=None) -> nbformat.NotebookNode:
    """The notebook of a jupytext file, with the snippets modules it imports bundled in."""
    notebook = jupytext.read(source)
    cells, bundled = [], []
    for cell in notebook.cells:
        if cell.cell_type == "markdown" and rewrite_link is not None:
            cell.source = _rewrite_markdown_links(cell.source, rewrite_link)
        if cell.cell_type == "code":
            try:
                wanted = snippet_imports(cell.source, root)
            except SyntaxError as error:
                raise PluginError(f"{source}: a code cell does not parse: {error}") from None
            missing = [m for m in modules_in_order(wanted, root) if m not in bundled]
            if missing and not bundled:
                cells += [nbformat.v4.new_markdown_cell(INTRO), nbformat.v4.new_code_cell(HELPER.rstrip("\n"))]
            for module in missing:
                path = module.replace(".", "/") + ".py"
                cells.append(nbformat.v4.new_code_cell(f"%%{MAGIC} {path}\n{bundled_source(module, root)}"))
                bundled.append(module)
        cells.append(cell)
    notebook.cells = cells
    notebook.metadata.pop("jupytext", None)
    notebook.metadata.setdefault("language_info", {"name": "python"})
    notebook.nbformat, notebook.nbformat_minor = 4, 5
    for cell in notebook.cells:  # nbformat 4.5 wants an id on every cell
        cell.setdefault("id", nbformat.v4.new_code_cell().id)
        cell.metadata = {k: v for k, v in cell.get("metadata", {}).items() if k != "lines_to_next_cell"}
    nbformat.validate(notebook)
    return notebook


MARKDOWN_LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")


def _rewrite_markdown_links(text: str, rewrite) -> str:
    return MARKDOWN_LINK.sub(lambda m: f"]({rewrite(m['target'])})", text)


# --- Hook events --------------------------------------------------------------------------

_notebooks: dict[str, str] = {}  # page source (notebooks/week1.py) -> download (notebooks/week1.ipynb)


def _page_url_of(target: str, src_uri: str, files) -> tuple[str, str] | None:
    """(url of the page a relative `.md` link points to, '#fragment' or ''), or None."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.endswith(".md"):
        return None
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(src_uri), parts.path))
    file = files.get_file_from_path(resolved)
    if file is None:
        return None  # hooks/page_checks.py reports it, naming the line
    return file.url, f"#{parts.fragment}" if parts.fragment else ""


def on_pre_build(config) -> None:
    _notebooks.clear()


def on_files(files, config):
    for file in list(files):
        if not NOTEBOOK_SOURCE.match(file.src_uri) or file.abs_src_path is None:
            continue
        download = file.src_uri.removesuffix(".py") + ".ipynb"
        site_url = config.get("site_url")

        def rewrite(target: str, src_uri=file.src_uri, download=download) -> str:
            found = _page_url_of(target, src_uri, files)
            if found is None:
                return target
            url, fragment = found
            if site_url:  # a downloaded notebook lives outside the site
                return urljoin(site_url, url) + fragment
            return get_relative_url(url, download) + fragment

        notebook = self_contained(Path(file.abs_src_path), ROOT, rewrite)
        files.append(File.generated(config, download, content=nbformat.writes(notebook)))
        _notebooks[file.src_uri] = download
    return files


MATHJAX = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.DOTALL)
MODULE_SCRIPT = re.compile(r"<script type=\"module\">(?:(?!</script>).)*?mermaid.*?</script>", re.DOTALL)
MARKDOWN_OUTPUT = re.compile(
    r'(<div class="jp-RenderedHTMLCommon jp-RenderedMarkdown jp-MarkdownOutput[^"]*"[^>]*>)'
    r'(.*?)(?=<div class="jp-Cell |</div> <!-- jp-Notebook -->)', re.DOTALL)
CODE_SPANS = re.compile(r"(<pre\b.*?</pre>|<code\b.*?</code>)", re.DOTALL)
DISPLAY_MATH = re.compile(r"<p>\s*\$\$(?P<tex>.+?)\$\$\s*</p>", re.DOTALL)
INLINE_MATH = re.compile(r"(?<![\\$])\$(?=\S)(?P<tex>[^$]+?)(?<=\S)(?<!\\)\$")
# What search must not index: code (<pre>), the copy button's hidden copy of each cell and its
# "Copied!", the "In [ ]:" prompts. Material's search parser compares elements by tag name, so
# `data-search-exclude` on a <div> would end at the first nested </div>: mark the innermost
# elements instead.
UNSEARCHED = re.compile(r'<(?P<open>pre|div class="clipboard-copy-txt"|div class="jp-InputPrompt[^"]*"'
                        r'|span class="notice")(?=[ >])(?! data-search-exclude)')
HREF = re.compile(r'href="(?P<target>[^"]+)"')


def _typeset(markdown_html: str) -> str:
    parts = CODE_SPANS.split(markdown_html)
    for i in range(0, len(parts), 2):  # even: outside <pre> and <code>
        text = DISPLAY_MATH.sub(lambda m: f'<div class="arithmatex">\\[{m["tex"]}\\]</div>', parts[i])
        parts[i] = INLINE_MATH.sub(lambda m: f'<span class="arithmatex">\\({m["tex"]}\\)</span>', text)
    return "".join(parts)


def on_page_content(html: str, page, config, files) -> str:
    download = _notebooks.get(page.file.src_uri)
    if download is None:
        return html
    html = MATHJAX.sub("", html)
    html = MODULE_SCRIPT.sub("", html)
    html = MARKDOWN_OUTPUT.sub(lambda m: m[1] + _typeset(m[2]), html)

    def href(match: re.Match) -> str:
        found = _page_url_of(match["target"], page.file.src_uri, files)
        if found is None:
            return match[0]
        url, fragment = found
        return f'href="{get_relative_url(url, page.url)}{fragment}"'

    html = HREF.sub(href, html)
    html = UNSEARCHED.sub(lambda m: f"<{m['open']} data-search-exclude", html)
    name = posixpath.basename(download)
    link = (f'<p class="notebook-download"><a class="md-button md-button--primary" '
            f'href="{get_relative_url(download, page.url)}" download="{name}">Download {name}</a> '
            f"Self-contained: it carries the snippets it imports and runs on a CPU with torch 2.7 "
            f"or later in any Jupyter kernel.</p>")
    at = html.find("</h1>")
    if at < 0:
        raise PluginError(f"docs/{page.file.src_uri}: the notebook has no title (a '# ' heading) "
                          "to put the download link under")
    at += len("</h1>")
    return html[:at] + link + html[at:]
