"""Changing a claimed equivalence on docs/grad-accumulation.md makes its page test fail.

Each case rewrites one claim in a copy of the page (equal -> different, or different -> equal),
runs the copy's blocks the way docs/conftest.py does, and expects the first failure at that line.
"""

from __future__ import annotations

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


def _examples(path):
    return list(Document.parse(str(path), PagePythonParser(), SkipParser(), ClearNamespaceParser()).examples())


@pytest.mark.parametrize("name", MUTATIONS)
def test_a_changed_claim_fails_at_its_line(tmp_path, name):
    old, new = MUTATIONS[name]
    text = PAGE.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"the claim {old!r} is no longer on the page exactly once"
    mutated_line = text[: text.index(old)].count("\n") + 1
    copy = tmp_path / PAGE.name
    copy.write_text(text.replace(old, new), encoding="utf-8")

    failed_at = None
    for example in _examples(copy):
        try:
            example.evaluate()
        except Exception:  # the SybilFailure of a doctest whose output no longer matches
            failed_at = example.line
            break
    assert failed_at is not None, f"the page still passes with {new!r}"
    # the failing doctest statement starts on the mutated line or a few lines above it
    assert 0 <= mutated_line - failed_at <= 12, (failed_at, mutated_line)


def test_the_unchanged_page_passes_in_the_same_harness():
    """So that each failure above is the mutation's doing."""
    examples = _examples(PAGE)
    for example in examples:
        example.evaluate()
    assert len(examples) > 50
