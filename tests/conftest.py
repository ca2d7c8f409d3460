"""Tests marked `cuda` need a CUDA GPU; without one they are skipped, with the reason shown."""

import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (the GPU evidence lives in docs/captures/)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    """The site, built once per test run with `mkdocs build --strict` (read-only for the tests)."""
    from tests.sitebuild import ROOT, build

    site_dir = tmp_path_factory.mktemp("site")
    result = build(ROOT, site_dir)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr[-4000:]}"
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
