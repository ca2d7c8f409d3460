"""The study kit's two in-page modes, used as a reader uses them, at 1280 and 390 px.

* The drills' self-test: start it from the keyboard, reveal each answer, mark it known or not,
  read the score, retry the missed questions, reload in the middle of the retry and find the
  progress kept (localStorage), finish the round.
* The talk tracks' practice mode: the 90-second timer runs down, the track folds into one cue
  card per sentence (the sentences the word test counts), a card opens on demand, and stopping
  practice brings the track back.

docs/assets/javascripts/study-kit.js does both; nothing is fetched from elsewhere.
"""

from __future__ import annotations


import pytest

from tests import browser
from tests.test_study_kit import drills, sentences, talk_tracks

pytestmark = [pytest.mark.build, pytest.mark.browser]

browser.require_browser()

VIEWPORTS = browser.VIEWPORTS
MISSED = (2, 5, 11)   # the drills (1-based) this reader does not know in the first round


def _status(page) -> str:
    return " ".join(page.inner_text(".kit-self-test .kit-st-status").split())


def _press(page, selector: str, key: str = "Enter") -> None:
    """Focus a control of the panel and operate it from the keyboard."""
    page.focus(selector)
    page.keyboard.press(key)


def _answer_one(page, knew: bool) -> None:
    """Reveal the answer with the keyboard, check it shows, and mark it (K or D)."""
    _press(page, ".kit-st-reveal")
    assert page.is_visible(".kit-st-answer"), "the answer did not appear"
    assert page.evaluate("document.activeElement.classList.contains('kit-st-knew')"), (
        "after revealing, the focus should be on 'Knew it'")
    page.keyboard.press("k" if knew else "d")


@VIEWPORTS
def test_the_self_test_round(chromium, url, viewport):
    questions = drills()
    total = len(questions)
    page, visit = browser.open_page(chromium, url + "drills/", viewport)
    try:
        assert f"{total} questions, one at a time" in _status(page)
        _press(page, ".kit-st-start")
        for n, question, _ in questions:
            status = _status(page)
            assert f"Round 1 · question {n} of {total}" in status, status
            shown = " ".join(page.inner_text(".kit-st-question").split())
            assert shown.startswith(f"{n}. "), shown
            assert not page.is_visible(".kit-st-answer")
            _answer_one(page, knew=n not in MISSED)
        known = total - len(MISSED)
        assert _status(page) == (f"Round 1 done: {known} of {total} known · known in all: "
                                 f"{known} of {total}.")
        listed = page.eval_on_selector_all(".kit-st-missed-list a", "els => els.map(a => a.textContent)")
        assert [text.split(".")[0] for text in listed] == [str(n) for n in MISSED]
        assert page.inner_text(".kit-st-retry") == f"Retry the {len(MISSED)} missed"
        assert not browser.overflow_problems(page, strict=viewport is browser.LAPTOP)

        # the retry round: the missed questions only, in order
        _press(page, ".kit-st-retry")
        assert f"Round 2 · question 1 of {len(MISSED)}" in _status(page)
        assert page.inner_text(".kit-st-question").startswith(f"{MISSED[0]}. ")
        _answer_one(page, knew=True)

        # reload in the middle of the round: the progress is kept
        page.reload(wait_until="networkidle")
        status = _status(page)
        assert f"Round 2 · question 2 of {len(MISSED)} · known so far: {known + 1} of {total}" in status
        assert page.inner_text(".kit-st-question").startswith(f"{MISSED[1]}. ")
        for _ in MISSED[1:]:
            _answer_one(page, knew=True)
        assert _status(page) == (f"Round 2 done: {len(MISSED)} of {len(MISSED)} known · known in all: "
                                 f"{total} of {total}.")
        assert page.is_visible("text=Every question of this round known.")
        assert not browser.overflow_problems(page, strict=viewport is browser.LAPTOP)

        # start over clears it
        _press(page, ".kit-st-restart")
        assert f"{total} questions, one at a time" in _status(page)
        assert page.evaluate("localStorage.getItem('kit-self-test:v1')") is None
    finally:
        page.close()
    assert not visit.console_errors and not visit.offsite


@VIEWPORTS
def test_the_practice_mode(chromium, url, viewport):
    tracks = talk_tracks()
    first_title, (first_script, _) = next(iter(tracks.items()))
    expected = sentences(first_script)
    page, visit = browser.open_page(chromium, url + "talk-tracks/", viewport)
    try:
        assert page.locator(".kit-practice-toggle").count() == len(tracks)
        bar = page.locator(".kit-practice-bar").first
        track = page.locator(".talk-track").first
        cues = page.locator(".kit-cues").first
        assert not cues.is_visible() and track.is_visible()

        # start from the keyboard
        bar.locator(".kit-practice-toggle").focus()
        page.keyboard.press("Enter")
        assert bar.locator(".kit-practice-toggle").get_attribute("aria-pressed") == "true"
        assert not track.is_visible() and cues.is_visible()
        timer = bar.locator(".kit-timer")
        page.wait_for_function(
            "el => /^1:2\\d$/.test(el.textContent)", arg=timer.element_handle(), timeout=5000)
        assert timer.inner_text() in {"1:29", "1:28", "1:27", "1:26", "1:25"}

        # one cue card per sentence, each the sentence's first words
        cards = cues.locator(".kit-cue")
        assert cards.count() == len(expected), f"{first_title}: {cards.count()} cards"
        buttons = cues.locator(".kit-cue-button")
        for i, sentence in enumerate(expected):
            words = sentence.split()
            label = buttons.nth(i).inner_text()
            assert label == (" ".join(words[:3]) + " …" if len(words) > 3 else sentence)
        # open one on demand, with the keyboard, and close it again
        buttons.nth(1).focus()
        page.keyboard.press("Enter")
        assert buttons.nth(1).get_attribute("aria-expanded") == "true"
        assert " ".join(buttons.nth(1).inner_text().split()) == expected[1]
        assert buttons.nth(2).get_attribute("aria-expanded") == "false"
        page.keyboard.press("Enter")
        assert buttons.nth(1).inner_text() != expected[1]
        page.keyboard.press("Enter")
        # pause holds the clock
        bar.locator(".kit-timer-pause").click()
        held = timer.inner_text()
        page.wait_for_timeout(1300)
        assert timer.inner_text() == held
        # show all, then stop practice: the track is back
        bar.locator(".kit-cues-all").click()
        assert [" ".join(buttons.nth(i).inner_text().split()) for i in range(len(expected))] == expected
        assert not browser.overflow_problems(page, strict=viewport is browser.LAPTOP)
        bar.locator(".kit-practice-toggle").click()
        assert track.is_visible() and not cues.is_visible()
        assert timer.inner_text() == "1:30"
    finally:
        page.close()
    assert not visit.console_errors and not visit.offsite
