"""Changing a claimed equivalence on docs/grad-accumulation.md makes its page test fail.

Each claim below is a doctest's expected output. The page's blocks run as a test of their own
(docs/conftest.py), so each doctest's output is what the code prints now; a claim rewritten
(equal -> different, or different -> equal) then fails that doctest if, and only if, the rewrite
is in the doctest's expected output (not in code, prose or a comment) and doctest's own output
checker tells the two apart. Both are checked here, on the parsed page, without running it again
(running a copy of the page once per claim cost minutes).
"""

from __future__ import annotations

import doctest

import pytest
from sybil import Document
from sybil.parsers.markdown import ClearNamespaceParser, SkipParser

from tests.docblocks import DOCS, PagePythonParser

PAGE = DOCS / "grad-accumulation.md"

MUTATIONS = {
    # the proof: accumulation at K = 64 is equal to the big batch within noise, not bit for bit
    "proof": ("K=64  b= 1  equal within noise", "K=64  b= 1  exactly equal"),
    # the token bug: averaging micro-batch means does NOT give the big batch's loss
    "token mean": ("(2.9401, 2.7724, 2.9401)", "(2.9401, 2.9401, 2.9401)"),
    # DDP and token counts: the global N times the world size gives the big batch's gradient
    "world size": ("lm_verdict(gradients(big_lm), times_world)\n    'equal within noise'",
                   "lm_verdict(gradients(big_lm), times_world)\n    'DIFFERENT by 0.21'"),
    # DDP: no_sync around forward and backward all-reduces once, after the last micro-batch
    "no_sync": ("ddp_accumulate_gradients  [3]", "ddp_accumulate_gradients  [0, 1, 2, 3]"),
    # the summary table's check: BatchNorm in training mode differs, in eval mode it matches
    "batchnorm": ("BatchNorm, eval mode       equal within noise", "BatchNorm, eval mode       DIFFERENT by 0.06"),
    # a forgotten / K: Adam's L2 decay notices it ...
    "adam l2": ("Adam, L2 decay 0.1  gap 1.9902", "Adam, L2 decay 0.1  gap 0.0000"),
    # ... as a decay divided by K
    "l2 over k": ("weight_decay=0.1 / K)) < 1e-3\n    True", "weight_decay=0.1 / K)) < 1e-3\n    False"),
    # ... and fp16 loses log2(K) doublings of loss-scale headroom
    "fp16 headroom": ("(524288, 131072, True)", "(524288, 524288, True)"),
    # the GPU capture: the float16 step with GradScaler("cuda") kept the initial scale
    "amp on cuda": ("('GradScaler(\"cuda\")', 65536.0, 'disabled')", "('GradScaler(\"cuda\")', 32768.0, 'disabled')"),
    # the GPU capture: the between-steps floor is the same, to the byte, at every K
    "flat floor": ("{1: 0, 2: 0, 4: 0, 8: 0}", "{1: 0, 2: 0, 4: 0, 8: 512}"),
    # the GPU capture: every K's step time within 10 % of K = 1's
    "flat time": ("< TIME_TOLERANCE for K in full[\"ks\"])\n    True",
                  "< TIME_TOLERANCE for K in full[\"ks\"])\n    False"),
    # a forgotten / K: bitwise K times the canonical loop's gradient
    "k times": ("zip(gradients(canonical), gradients(summed)))\n    True",
                "zip(gradients(canonical), gradients(summed)))\n    False"),
    # ... and Adam sees it once clipping scales only the wrong run's steps
    "clipped adam": ("max_norm 2     gap 0.4786", "max_norm 2     gap 0.0000"),
    # a pack hook that returns tensor.detach() leaves nothing alive without a backward...
    "detach": ("SavedActivations  forward only:    0", "SavedActivations  forward only: 1344"),
    # ...and one that returns the tensor itself keeps the graph's saved outputs alive
    "trap": ("ReturnsTheTensor  forward only: 1344", "ReturnsTheTensor  forward only:    0"),
}


def _statements(text: str, path: str) -> list:
    """The page's doctest statements and code blocks, as Sybil parses them (nothing runs)."""
    document = Document(text, path)
    for parser in (PagePythonParser(), SkipParser(), ClearNamespaceParser()):
        for region in parser(document):
            document.add(region)
    return [e.parsed for e in document.examples()]


@pytest.mark.parametrize("name", MUTATIONS)
def test_a_changed_claim_fails_at_its_line(name):
    old, new = MUTATIONS[name]
    text = PAGE.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"the claim {old!r} is no longer on the page exactly once"
    before = _statements(text, str(PAGE))
    after = _statements(text.replace(old, new), str(PAGE))
    assert len(before) == len(after)
    changed = [(b, a) for b, a in zip(before, after) if str(getattr(b, "source", b)) != str(getattr(a, "source", a))
               or getattr(b, "want", None) != getattr(a, "want", None)]
    assert len(changed) == 1, f"{name}: the rewrite changes {len(changed)} statements, not one"
    (b, a), = changed
    assert isinstance(b, doctest.Example), f"{name}: the claim is not a doctest's output"
    assert a.source == b.source, f"{name}: the rewrite changes code, not a claim"
    flags = sum(flag for flag, on in b.options.items() if on)
    assert not doctest.OutputChecker().check_output(a.want, b.want, flags), (
        f"{name}: doctest would accept {new!r} where the code prints {old!r}")


def test_a_rewrite_outside_a_doctests_output_is_not_taken_for_a_claim(monkeypatch):
    """The check above must fail for a 'claim' that is code, or that doctest cannot tell apart."""
    monkeypatch.setitem(MUTATIONS, "code", ("B_proof = len(X)", "B_proof = len(X) "))
    with pytest.raises(AssertionError, match="changes code, not a claim|not a doctest's output"):
        test_a_changed_claim_fails_at_its_line("code")
