"""Every Python block on every page runs as a test (Sybil), as the built page shows it, and every
value binding in the prose (`<!-- bind 0.1: lr -->`) is checked against the page's namespace.

The parsing and running live in tests/docblocks.py, shared with the tests that guard them.
"""

from sybil import Sybil
from sybil.parsers.markdown import ClearNamespaceParser, SkipParser

from tests.docblocks import BindingParser, PagePythonParser

pytest_collect_file = Sybil(
    parsers=[PagePythonParser(), SkipParser(), ClearNamespaceParser(), BindingParser()],
    pattern="*.md",
).pytest()
