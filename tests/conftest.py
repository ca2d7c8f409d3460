"""Tests marked `cuda` need a CUDA GPU; without one they are skipped, with the reason shown."""

import os

import pytest
import torch


# Files whose tests share nothing but session fixtures (the site, Chromium, its server): under
# `--dist loadfile` each of these tests is a unit of its own, so one file's hundred page loads are
# spread over every worker instead of queueing on one. Every other file stays one unit (a page's
# blocks share one namespace; modules share their fixtures).
SPREAD = ("tests/test_browser.py", "tests/test_figures_browser.py")


def pytest_xdist_make_scheduler(config, log):
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    from tests.smoke import READERS

    class Spread(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            if path in READERS:      # one worker runs each example's smoke size once for them
                return "smoke runs"
            return nodeid if path in SPREAD else path

    return Spread(config, log)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (the GPU evidence lives in docs/captures/)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    """The site, built once per test run with `mkdocs build --strict` (read-only for the tests).

    Under pytest-xdist every worker asks for it: the first builds it into the run's shared
    temporary folder, holding a lock, and the others wait and read the same build."""
    from filelock import FileLock

    from tests.sitebuild import ROOT, build

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent                  # one folder above each worker's own
    site_dir, failed = shared / "site", shared / "site.failed"
    with FileLock(str(shared / "site.lock")):
        if failed.exists():
            pytest.fail(failed.read_text(encoding="utf-8"))
        if not (site_dir / "index.html").exists():
            result = build(ROOT, site_dir)
            if result.returncode != 0:
                failed.write_text(f"mkdocs build --strict failed:\n{result.stderr[-4000:]}", encoding="utf-8")
                pytest.fail(failed.read_text(encoding="utf-8"))
    return site_dir


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium driven by Playwright, once per test run (tests/browser.py)."""
    from tests import browser

    with browser.launched() as instance:
        yield instance


@pytest.fixture(scope="session")
def url(site):
    """The built site served on 127.0.0.1 for the whole run: its base URL."""
    from tests import browser

    with browser.serve(site) as base:
        yield base
