// "Before the meeting": practice mode for the talk tracks, self-test mode for the drills.
// Plain JavaScript, offline, every control a <button>; progress kept in localStorage.
// tests/test_study_kit_browser.py takes both through a full round at 1280 and 390 px.
(function () {
  "use strict";

  var PRACTICE_SECONDS = 90;
  var CUE_WORDS = 3;
  var STORE = "kit-self-test:v1";

  // One rule for sentences, the same as tests/test_study_kit.py's `sentences`: a sentence ends at
  // . ! or ? followed by a space and a capital letter or a digit.
  function sentences(text) {
    var flat = text.replace(/\s+/g, " ").trim();
    return flat ? flat.split(/(?<=[.!?])\s+(?=[A-Z0-9])/) : [];
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "className") node.className = attrs[key];
      else node.setAttribute(key, attrs[key]);
    });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function button(label, className) {
    var b = el("button", { type: "button", className: "md-button " + (className || "") }, label);
    return b;
  }

  // ---- practice mode: a 90-second timer and cue cards -------------------------------------

  function clock(seconds) {
    var sign = seconds < 0 ? "+" : "";
    var s = Math.abs(seconds);
    return sign + Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }

  function openCard(card, open) {
    card.textContent = open ? card.dataset.sentence : card.dataset.cue;
    card.setAttribute("aria-expanded", String(open));
  }

  function setUpPractice(track, index) {
    var bar = el("div", { className: "kit-practice-bar" });
    var toggle = button("Practice", "kit-practice-toggle");
    toggle.setAttribute("aria-pressed", "false");
    toggle.setAttribute("aria-controls", "kit-cues-" + index);
    bar.appendChild(toggle);

    var controls = el("span", { className: "kit-practice-controls" });
    controls.hidden = true;
    var timer = el("span", { className: "kit-timer", role: "timer", "aria-live": "off" },
                   clock(PRACTICE_SECONDS));
    var pause = button("Pause", "kit-timer-pause");
    var reset = button("Restart", "kit-timer-reset");
    var all = button("Show all", "kit-cues-all");
    all.setAttribute("aria-pressed", "false");
    [timer, pause, reset, all].forEach(function (node) { controls.appendChild(node); });
    bar.appendChild(controls);
    track.parentNode.insertBefore(bar, track);

    var cues = el("ol", { className: "kit-cues", id: "kit-cues-" + index });
    cues.hidden = true;
    Array.prototype.forEach.call(track.querySelectorAll("p"), function (p) {
      sentences(p.textContent).forEach(function (sentence) {
        var words = sentence.split(" ");
        var cue = words.length > CUE_WORDS ? words.slice(0, CUE_WORDS).join(" ") + " …" : sentence;
        var item = el("li", { className: "kit-cue" });
        // one button per card: its words, or the whole sentence once opened
        var card = el("button", { type: "button", className: "kit-cue-button",
                                  "aria-expanded": "false" }, cue);
        card.dataset.cue = cue;
        card.dataset.sentence = sentence;
        card.addEventListener("click", function () {
          openCard(card, card.getAttribute("aria-expanded") !== "true");
        });
        item.appendChild(card);
        cues.appendChild(item);
      });
    });
    track.parentNode.insertBefore(cues, track.nextSibling);

    var endsAt = null, left = PRACTICE_SECONDS, ticking = null;
    function show() {
      timer.textContent = clock(left);
      timer.classList.toggle("kit-timer-over", left < 0);
    }
    function tick() {
      left = Math.ceil((endsAt - Date.now()) / 1000);
      show();
    }
    function run() {
      endsAt = Date.now() + left * 1000;
      ticking = window.setInterval(tick, 200);
      pause.textContent = "Pause";
    }
    function stop() {
      if (ticking !== null) window.clearInterval(ticking);
      ticking = null;
      pause.textContent = "Resume";
    }
    function setAll(open) {
      all.setAttribute("aria-pressed", String(open));
      all.textContent = open ? "Cue cards" : "Show all";
      Array.prototype.forEach.call(cues.querySelectorAll(".kit-cue-button"), function (card) {
        openCard(card, open);
      });
    }

    toggle.addEventListener("click", function () {
      var on = toggle.getAttribute("aria-pressed") !== "true";
      toggle.setAttribute("aria-pressed", String(on));
      toggle.textContent = on ? "Stop practice" : "Practice";
      controls.hidden = !on;
      cues.hidden = !on;
      track.hidden = on;
      stop();
      left = PRACTICE_SECONDS;
      show();
      setAll(false);
      if (on) {
        run();
        var first = cues.querySelector(".kit-cue-button");
        if (first) first.focus();
      }
    });
    pause.addEventListener("click", function () {
      if (ticking === null) run(); else stop();
    });
    reset.addEventListener("click", function () {
      stop();
      left = PRACTICE_SECONDS;
      show();
      run();
    });
    all.addEventListener("click", function () {
      setAll(all.getAttribute("aria-pressed") !== "true");
    });
  }

  // ---- self-test mode: one drill at a time ------------------------------------------------

  function drills() {
    var found = [];
    document.querySelectorAll(".md-typeset h3[id]").forEach(function (heading) {
      var context = [], answer = null, node = heading.nextElementSibling;
      while (node && !/^H[1-3]$/.test(node.tagName)) {
        if (node.matches("details.answer")) { answer = node; break; }
        context.push(node);
        node = node.nextElementSibling;
      }
      if (answer) found.push({ id: heading.id, heading: heading, context: context, answer: answer });
    });
    return found;
  }

  function load() {
    try {
      var state = JSON.parse(window.localStorage.getItem(STORE) || "null");
      return state && state.v === 1 ? state : null;
    } catch (error) {
      return null;
    }
  }

  function save(state) {
    try {
      if (state) window.localStorage.setItem(STORE, JSON.stringify(state));
      else window.localStorage.removeItem(STORE);
    } catch (error) { /* private mode: progress lasts for this visit only */ }
  }

  function copyOf(node) {
    var copy = node.cloneNode(true);
    copy.removeAttribute("id");
    copy.querySelectorAll("[id]").forEach(function (inner) { inner.removeAttribute("id"); });
    copy.querySelectorAll(".headerlink").forEach(function (link) { link.remove(); });
    return copy;
  }

  function setUpSelfTest(panel) {
    var all = drills();
    var byId = {};
    all.forEach(function (d) { byId[d.id] = d; });
    var state = load();
    if (state && !state.queue.every(function (id) { return byId[id]; })) state = null;

    var head = el("p", { className: "kit-st-status", "aria-live": "polite" });
    var body = el("div", { className: "kit-st-body" });
    var actions = el("div", { className: "kit-st-actions" });
    panel.textContent = "";
    panel.appendChild(el("p", { className: "kit-st-title" }, "Test yourself"));
    panel.appendChild(head);
    panel.appendChild(body);
    panel.appendChild(actions);

    function fresh(ids) {
      return { v: 1, round: 1, queue: ids, pos: 0, revealed: false, results: {}, known: [] };
    }

    function act(label, className, handler) {
      var b = button(label, className);
      b.addEventListener("click", function () {
        handler();
        save(state);
        render(true);
      });
      actions.appendChild(b);
      return b;
    }

    function knownCount() {
      return state.known.length;
    }

    function mark(knew) {
      var id = state.queue[state.pos];
      state.results[id] = knew;
      if (knew && state.known.indexOf(id) < 0) state.known.push(id);
      state.pos += 1;
      state.revealed = false;
    }

    function render(focus) {
      body.textContent = "";
      actions.textContent = "";
      var primary = null;
      if (!state) {
        head.textContent = all.length + " questions, one at a time. Answer aloud, show the answer, "
          + "and mark it. Your progress stays in this browser.";
        primary = act("Start the self-test", "md-button--primary kit-st-start", function () {
          state = fresh(all.map(function (d) { return d.id; }));
        });
      } else if (state.pos < state.queue.length) {
        var drill = byId[state.queue[state.pos]];
        head.textContent = "Round " + state.round + " · question " + (state.pos + 1) + " of "
          + state.queue.length + " · known so far: " + knownCount() + " of " + all.length;
        var question = el("p", { className: "kit-st-question" });
        Array.from(copyOf(drill.heading).childNodes).forEach(function (child) {
          question.appendChild(child);
        });
        body.appendChild(question);
        drill.context.forEach(function (node) { body.appendChild(copyOf(node)); });
        if (!state.revealed) {
          primary = act("Show the answer", "md-button--primary kit-st-reveal", function () {
            state.revealed = true;
          });
        } else {
          var answer = el("div", { className: "kit-st-answer" });
          Array.prototype.forEach.call(drill.answer.children, function (child) {
            if (child.tagName === "SUMMARY" || child.matches(".highlight, pre, div[class*=language-]")) {
              return;
            }
            answer.appendChild(copyOf(child));
          });
          var more = el("a", { href: "#" + drill.id, className: "kit-st-more" },
                        "The answer with its code, on this page");
          answer.appendChild(el("p")).appendChild(more);
          body.appendChild(answer);
          primary = act("Knew it", "md-button--primary kit-st-knew", function () { mark(true); });
          act("Didn't know it", "kit-st-missed", function () { mark(false); });
        }
        act("Start over", "kit-st-restart", function () { state = null; });
      } else {
        var missed = state.queue.filter(function (id) { return !state.results[id]; });
        head.textContent = "Round " + state.round + " done: " + (state.queue.length - missed.length)
          + " of " + state.queue.length + " known · known in all: " + knownCount() + " of "
          + all.length + ".";
        if (missed.length) {
          body.appendChild(el("p", {}, "Missed this round:"));
          var list = el("ul", { className: "kit-st-missed-list" });
          missed.forEach(function (id) {
            var item = el("li");
            var link = el("a", { href: "#" + id });
            link.textContent = byId[id].heading.textContent.replace(/¶$/, "").trim();
            item.appendChild(link);
            list.appendChild(item);
          });
          body.appendChild(list);
          primary = act("Retry the " + missed.length + " missed", "md-button--primary kit-st-retry",
                        function () {
                          state = { v: 1, round: state.round + 1, queue: missed, pos: 0,
                                    revealed: false, results: {}, known: state.known };
                        });
        } else {
          body.appendChild(el("p", {}, "Every question of this round known."));
        }
        var restart = act("Start over", "kit-st-restart", function () { state = null; });
        primary = primary || restart;
      }
      if (focus && primary) {
        primary.focus({ preventScroll: true });
        panel.scrollIntoView({ block: "nearest" });
      }
    }

    // Keys while the panel has focus: K knew it, D didn't, Enter or Space press the focused button.
    panel.addEventListener("keydown", function (event) {
      if (event.altKey || event.ctrlKey || event.metaKey) return;
      var key = event.key.toLowerCase();
      var target = { k: ".kit-st-knew", d: ".kit-st-missed", a: ".kit-st-reveal" }[key];
      var b = target && panel.querySelector(target);
      if (b) {
        event.preventDefault();
        b.click();
      }
    });

    render(false);
  }

  function start() {
    document.querySelectorAll(".md-typeset .talk-track").forEach(function (track, index) {
      if (!track.dataset.kitReady) {
        track.dataset.kitReady = "1";
        setUpPractice(track, index);
      }
    });
    document.querySelectorAll(".md-typeset .kit-self-test").forEach(function (panel) {
      if (!panel.dataset.kitReady) {
        panel.dataset.kitReady = "1";
        setUpSelfTest(panel);
      }
    });
  }

  // After Material's page observable (and so after math.js has typeset the formulas we copy).
  if (typeof document$ !== "undefined") document$.subscribe(start);
  else document.addEventListener("DOMContentLoaded", start);
})();
