"""The week as one notebook: docs/notebooks/week1.py runs top to bottom on the CPU, and so does
the self-contained week1.ipynb that the built page offers for download, outside the repository.

The notebook runs in a real Jupyter kernel (nbclient, ipykernel) with warnings as errors, as the
pages' blocks do. The download is taken from a strict build and run in an empty temporary
folder, with the repository's `snippets` package made unimportable: every snippet it uses must
come from the cells hooks/notebook.py bundled into it.
"""

from __future__ import annotations

import json
import os
import re
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

from hooks.notebook import MAGIC, bundled_source, self_contained, snippet_imports
from tests.sitebuild import ROOT
from tests.test_pages import GPU_MODEL

NOTEBOOK = ROOT / "docs" / "notebooks" / "week1.py"
PAGE = "notebooks/week1/index.html"
# The whole notebook, kernel start included, on a shared 2-core machine: well inside the suite's
# 180 s per-test timeout (it takes about 10 s here).
RUN_LIMIT_S = 90
CELL_LIMIT_S = 60
CODE_COLUMNS = 80

# Prepended to every run: warnings are errors, as in the test suite (API rot such as
# torch.cuda.amp fails here first), except the kernel's own notice when it shuts down.
STRICT_WARNINGS = """\
import warnings
warnings.simplefilter("error")
warnings.simplefilter("default", PendingDeprecationWarning)"""

# Prepended to the downloaded notebook's run: the repository's package cannot be imported, even
# through an editable install; only modules the notebook registers itself (sys.modules) resolve.
HIDE_REPOSITORY = """\
import importlib.abc
import sys


class HideRepository(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "snippets":
            raise ImportError(f"{name} is not bundled in this notebook")
        return None


sys.meta_path.insert(0, HideRepository())"""

REPORT = """\
import json
import sys
print(json.dumps({"path": sys.path, "snippets": {
    name: getattr(module, "__file__", None)
    for name, module in sys.modules.items()
    if name.split(".")[0] == "snippets"}}))"""

# The measuring cells' functions, at a tiny size on the CPU: they run only on CUDA in the
# notebook, so this is what keeps their code paths from rotting unseen.
MEASURING_SMOKE = """\
import json
cpu = torch.device("cpu")
state = state_on_device(optimizers["Adam"], cpu, width=64, depth=2, batch=8)
accumulation = accumulation_on_device(cpu, width=64, depth=2, batch=32,
                                      ks=(1, 2), repeat=1)
ckpt = checkpointing_on_device(cpu, d=16, n=4, tokens=64, repeat=1)
print(json.dumps({"state": state, "accumulation": accumulation,
                  "checkpointing": ckpt}))"""


def _run(notebook: nbformat.NotebookNode, cwd: Path, env: dict[str, str]) -> float:
    """Execute in place; returns the wall time. Raises CellExecutionError on a failing cell."""
    client = NotebookClient(notebook, timeout=CELL_LIMIT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}})
    start = time.perf_counter()
    client.execute(env=env)
    return time.perf_counter() - start


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("name") == "stdout")


def _all_text(notebook) -> str:
    return "\n".join(_text(cell) for cell in notebook.cells if cell.cell_type == "code")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["CUDA_VISIBLE_DEVICES"] = ""  # the CPU path, whatever machine runs the tests
    return env | extra


@pytest.mark.build
def test_the_notebook_runs_top_to_bottom_on_the_cpu(notebook_run):
    """The notebook a reader downloads, run once for this module (`notebook_run`): every cell
    under warnings-as-errors, then the measuring cells' functions at a tiny size."""
    notebook, seconds, _ = notebook_run
    assert seconds < RUN_LIMIT_S, f"the notebook took {seconds:.0f} s on the CPU (limit {RUN_LIMIT_S} s)"

    text = _all_text(notebook)
    # Each measuring cell says plainly that it skipped the GPU measurement.
    assert text.count("CUDA not available") == 3, text
    # A few of the corrected claims, as the notebook prints them.
    for line in ("persistent: 2P", "persistent: 3P", "Adam(decoupled) == AdamW, bitwise: True",
                 "gradients bitwise equal: True", "preserve_rng_state=False: gradients equal: False",
                 "zero_grad's set_to_none default: True"):
        assert line in text, f"the notebook no longer prints {line!r}"
    assert "KB" not in text.replace("KiB", ""), "bytes are printed in binary units (KiB, MiB)"

    smoke = json.loads(_text(notebook.cells[-2]))
    counted, allocated, peak = smoke["state"]
    assert counted > 0 and allocated is None and peak is None  # no allocator counter on a CPU
    assert [row[0] for row in smoke["accumulation"]] == [1, 2]
    assert all(row[2] is None and row[3] > 0 for row in smoke["accumulation"])
    assert [row[0] for row in smoke["checkpointing"]][:2] == ["none", "one checkpoint"]
    assert all(row[1] is None and row[2] > 0 for row in smoke["checkpointing"])


def test_every_snippets_import_is_bundled_before_it_runs():
    notebook = self_contained(NOTEBOOK)
    bundled: list[str] = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        first, _, body = cell.source.partition("\n")
        if first.startswith(f"%%{MAGIC} "):
            module = first.split()[1].removesuffix(".py").replace("/", ".")
            assert module not in bundled, f"{module} bundled twice"
            assert body == bundled_source(module), f"{module}: the bundled copy differs from its file"
            # its own imports were bundled before it
            assert set(snippet_imports(body)) <= set(bundled), module
            bundled.append(module)
        else:
            missing = set(snippet_imports(cell.source)) - set(bundled)
            assert not missing, f"a cell imports {sorted(missing)} before they are bundled:\n{cell.source}"
    assert {"snippets.accounting", "snippets.checkpointing", "snippets.live_bytes"} <= set(bundled)
    nbformat.validate(notebook)


def test_the_notebook_keeps_the_house_rules():
    notebook = jupytext.read(NOTEBOOK)
    long, named = [], []
    for i, cell in enumerate(notebook.cells):
        for line in cell.source.splitlines():
            if cell.cell_type == "code" and len(line) > CODE_COLUMNS:
                long.append(f"cell {i}: {line}")
            if GPU_MODEL.search(line):
                named.append(f"cell {i}: {line}")
    assert not long, f"code lines over {CODE_COLUMNS} characters:\n" + "\n".join(long)
    assert not named, "the notebook names a GPU model:\n" + "\n".join(named)
    headings = [line for cell in notebook.cells if cell.cell_type == "markdown"
                for line in cell.source.splitlines() if line.startswith("#")]
    assert not [h for h in headings if re.search(r"[`$]", h)], "code or math in a heading: the TOC drops it"


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.downloads: list[str] = []
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "a" and attributes.get("href"):
            self.hrefs.append(attributes["href"])
            if "download" in attributes:
                self.downloads.append(attributes["href"])


def _download(site: Path) -> Path:
    page = site / PAGE
    assert page.is_file(), f"no notebook page at {PAGE}"
    links = _Links()
    links.feed(page.read_text(encoding="utf-8"))
    notebooks = [href for href in links.downloads if urlsplit(href).path.endswith(".ipynb")]
    assert notebooks, f"{PAGE} has no download link to the .ipynb"
    target = site / unquote(urlsplit(urljoin("/" + PAGE, notebooks[0])).path).lstrip("/")
    assert target.is_file(), f"the download link points to {target.relative_to(site)}, which was not built"
    return target


@pytest.mark.build
def test_the_built_page_offers_the_notebook_for_download(site):
    notebook = nbformat.read(_download(site), as_version=4)
    nbformat.validate(notebook)
    html = (site / PAGE).read_text(encoding="utf-8")
    assert html.count('class="arithmatex"') >= 20, "the notebook's math is not marked up for KaTeX"
    scripts = re.findall(r"<script\b.*?</script>", html, re.DOTALL)
    offsite = [s[:120] for s in scripts if re.search(r"https?://|mathjax", s, re.IGNORECASE)]
    assert not offsite, f"a script names another site (nbconvert's MathJax or mermaid loader): {offsite}"
    links = _Links()
    links.feed(html)
    assert not [h for h in links.hrefs if urlsplit(h).path.endswith(".md")], "a link still points to a .md file"


@pytest.mark.claim("The notebook page shows every code cell's output, run when the site is built",
                   page="notebooks/week1.py")
@pytest.mark.build
def test_the_notebook_page_shows_the_outputs_of_its_cells(site):
    """The prose refers to tables the cells print: the page must show them (mkdocs-jupyter runs the
    notebook at build time). Every code cell that prints shows an output, and the outputs are the
    ones a run gives."""
    import html as html_module

    page = (site / PAGE).read_text(encoding="utf-8")
    outputs = [html_module.unescape(re.sub(r"<[^>]+>", "", o)) for o in re.findall(
        r'class="jp-RenderedText jp-OutputArea-output" data-mime-type="text/plain"[^>]*>(.*?)</div>', page, re.S)]
    notebook = jupytext.read(ROOT / "docs" / "notebooks" / "week1.py")
    printing = [c for c in notebook.cells if c.cell_type == "code" and "print(" in c.source]
    assert len(outputs) >= len(printing), f"{len(outputs)} outputs shown for {len(printing)} printing cells"
    shown = "\n".join(outputs)
    for text in ("P (numel): 35594", "Adam(decoupled) == AdamW, bitwise: True", "gradients bitwise equal: True"):
        assert text in shown, f"the page does not show the output {text!r}"
    assert not re.search(r'<div[^>]*data-mime-type="application/vnd.jupyter.stderr"', page), "a cell wrote to stderr"


@pytest.fixture(scope="module")
def notebook_run(site, tmp_path_factory):
    """The downloaded notebook, run once in an empty folder with the repository hidden: warnings
    are errors, and the measuring cells' functions run at a tiny size after the last cell. (The
    site build ran the source notebook already; this is the one run the tests make.)"""
    reader = tmp_path_factory.mktemp("reader")  # an empty folder: no snippets/ beside the notebook
    downloaded = reader / "week1.ipynb"
    downloaded.write_bytes(_download(site).read_bytes())
    notebook = nbformat.read(downloaded, as_version=4)
    notebook.cells[:0] = [nbformat.v4.new_code_cell(STRICT_WARNINGS),
                          nbformat.v4.new_code_cell(HIDE_REPOSITORY)]
    notebook.cells += [nbformat.v4.new_code_cell(MEASURING_SMOKE), nbformat.v4.new_code_cell(REPORT)]
    seconds = _run(notebook, reader, _env())
    return notebook, seconds, reader


@pytest.mark.build
def test_the_downloaded_notebook_runs_outside_the_repository(notebook_run):
    notebook, seconds, reader = notebook_run
    assert seconds < RUN_LIMIT_S, f"the downloaded notebook took {seconds:.0f} s (limit {RUN_LIMIT_S} s)"

    report = json.loads(_text(notebook.cells[-1]))
    root = str(ROOT)
    assert not [p for p in report["path"] if p and Path(p).resolve() == ROOT], report["path"]
    assert not [f for f in report["snippets"].values() if f and f.startswith(root)], report["snippets"]
    assert "snippets.accounting" in report["snippets"]
    assert not list(reader.glob("snippets*")), "the notebook wrote files beside itself"
