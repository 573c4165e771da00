// The console's text: a run of numbered lines [first, last] that grows upwards from the history as
// the user scrolls back, and downwards with live output. Live lines are placed by their sequence
// number: what a reconnection repeats is dropped, and a gap is filled from the history. After a
// jump to an old line the run no longer reaches the newest line ("detached"); live output then
// waits until the user scrolls down to it or follows live again.

import { initialState, parseLine } from "./ansi.js";
import { historyPage } from "./consolehistory.js";
import { h } from "./dom.js";

const PAGE = 500;
const MAX_FOLLOWED_LINES = 5000; // while following, older lines leave the page (scrolling back reloads them)
const LOAD_MARGIN_PX = 150;
const CONTEXT = 100; // lines shown on each side of a line jumped to

function segmentElement({ text, style }) {
  const span = h("span", { text });
  const classes = [];
  let { fg, bg } = style;
  if (style.inverse) [fg, bg] = [bg || { palette: 7 }, fg || { palette: 0 }];
  if (fg && "palette" in fg) classes.push(`fg-${fg.palette}`);
  if (bg && "palette" in bg) classes.push(`bg-${bg.palette}`);
  if (fg && fg.rgb) span.style.color = fg.rgb;
  if (bg && bg.rgb) span.style.backgroundColor = bg.rgb;
  for (const flag of ["bold", "dim", "italic", "underline", "strike"]) if (style[flag]) classes.push(flag);
  if (classes.length) span.className = classes.join(" ");
  return span;
}

/** The last seq a history entry stands for (a marker of dropped lines stands for several). */
const lastOf = (line) => line.seq + Math.max(1, line.missed || 0) - 1;

/**
 * The view over `output` (the role=log element). Callbacks: `onFollowing(bool)` when following
 * live output starts or stops, `onUnseenOutput()` when output arrives while not following,
 * `onProblem(error)` when a history request fails.
 */
export function createConsoleView(id, output, { onFollowing, onUnseenOutput, onProblem }) {
  let first = null;
  let last = null;
  let reachesNewest = true;
  let following = true;
  let atStart = false;
  let ansi = initialState();
  let highlighter = null;
  let loading = false;
  let chain = Promise.resolve();
  const run = (task) => (chain = chain.then(task).catch(onProblem));

  const atBottom = () => output.scrollHeight - output.scrollTop - output.clientHeight < 4;

  function setFollowing(value) {
    if (value === following) return;
    following = value;
    onFollowing(value);
  }

  function lineElement(line, state) {
    const time = new Date(line.time).toLocaleString();
    const element = h("div", {
      class: line.missed ? "line marker" : "line", dataset: { seq: line.seq }, title: `${time} · line ${line.seq}`,
    }, parseLine(line.text, state).map(segmentElement));
    if (highlighter) highlighter(element);
    return element;
  }

  function note(text) {
    output.append(h("div", { class: "line note", text }));
  }

  function append(lines, { quiet = false } = {}) {
    if (!lines.length) return;
    const fragment = document.createDocumentFragment();
    for (const line of lines) fragment.append(lineElement(line, ansi));
    output.append(fragment);
    if (first === null) first = lines[0].seq;
    last = lastOf(lines[lines.length - 1]);
    if (following) {
      trimTop();
      output.scrollTop = output.scrollHeight;
    } else if (!quiet) {
      onUnseenOutput();
    }
  }

  function prepend(lines) {
    const state = initialState(); // colours do not carry over from unknown older lines
    const fragment = document.createDocumentFragment();
    for (const line of lines) fragment.append(lineElement(line, state));
    const height = output.scrollHeight;
    output.prepend(fragment);
    output.scrollTop += output.scrollHeight - height; // keep what the user was reading in place
    first = lines[0].seq;
  }

  function trimTop() {
    if (output.childElementCount <= MAX_FOLLOWED_LINES) return;
    while (output.childElementCount > MAX_FOLLOWED_LINES) output.firstElementChild.remove();
    const oldest = output.querySelector(".line[data-seq]");
    first = oldest ? Number(oldest.dataset.seq) : last;
    atStart = false;
  }

  function reset() {
    output.replaceChildren();
    first = last = null;
    atStart = false;
    ansi = initialState();
  }

  /** Lines after `after` and before `before`, from the history; a note for any it no longer keeps. */
  async function fill(after, before) {
    while (after + 1 < before) {
      const page = await historyPage(id, { after, before, limit: 5000 });
      if (!page.lines.length) break;
      append(page.lines);
      after = last;
      if (!page.more) break;
    }
    if (after + 1 < before) {
      note(`[Dashboard] ${before - after - 1} line(s) are no longer kept.`);
      last = before - 1;
    }
  }

  /** Live output from the socket: lines numbered from `seq`. */
  function receive(texts, seq) {
    const now = Date.now();
    run(async () => {
      if (!reachesNewest) return; // detached: caught up from the history when scrolled to
      const fresh = texts.map((text, i) => ({ seq: seq + i, time: now, text })).filter((line) => last === null || line.seq > last);
      if (!fresh.length) return;
      if (last !== null && fresh[0].seq > last + 1) await fill(last, fresh[0].seq);
      append(fresh);
    });
  }

  function loadOlder() {
    if (loading || atStart || first === null) return;
    loading = true;
    run(async () => {
      try {
        if (first <= 1) {
          atStart = true;
          return;
        }
        const page = await historyPage(id, { before: first, limit: PAGE });
        if (page.lines.length) prepend(page.lines);
        if (!page.more) atStart = true;
      } finally {
        loading = false;
      }
    });
  }

  function loadNewer() {
    if (loading || reachesNewest || last === null) return;
    loading = true;
    run(async () => {
      try {
        const page = await historyPage(id, { after: last, limit: PAGE });
        append(page.lines, { quiet: true });
        if (!page.more) reachesNewest = true;
      } finally {
        loading = false;
      }
    });
  }

  let lastTop = 0;
  output.addEventListener("scroll", () => {
    const bottom = atBottom();
    const movedUp = output.scrollTop < lastTop; // the user's doing: a resize or new output never moves it up
    lastTop = output.scrollTop;
    if (bottom && reachesNewest) setFollowing(true);
    else if (movedUp) setFollowing(false);
    if (output.scrollTop < LOAD_MARGIN_PX) loadOlder();
    if (bottom && !reachesNewest) loadNewer();
  });
  new ResizeObserver(() => {
    if (following) output.scrollTop = output.scrollHeight; // stay at the end when the page is resized
  }).observe(output);

  return {
    receive,
    note(text) {
      run(() => note(text));
    },
    /** Show line `seq` (loading a window around it when it is not shown) and return its element. */
    reveal(seq) {
      return run(async () => {
        if (first === null || seq < first || seq > last) {
          const [older, newer] = await Promise.all([
            historyPage(id, { before: seq + 1, limit: CONTEXT }), historyPage(id, { after: seq, limit: CONTEXT })]);
          setFollowing(false);
          reset();
          reachesNewest = !newer.more;
          atStart = !older.more;
          append([...older.lines, ...newer.lines], { quiet: true });
        } else {
          setFollowing(false);
        }
        const element = output.querySelector(`.line[data-seq="${seq}"]`);
        if (element) element.scrollIntoView({ block: "center" });
        return element;
      });
    },
    /** Follow live output: back to the newest lines if detached, and keep the end in view. */
    follow() {
      return run(async () => {
        if (!reachesNewest) {
          const page = await historyPage(id, { limit: PAGE });
          reset();
          atStart = !page.more;
          reachesNewest = true;
          append(page.lines, { quiet: true });
        }
        setFollowing(true);
        output.scrollTop = output.scrollHeight;
      });
    },
    unfollow() {
      setFollowing(false);
    },
    /** Mark matches with `marker(element)` in every shown line and in lines shown later (null: no search). */
    highlight(marker) {
      highlighter = marker;
      for (const element of output.querySelectorAll(".line")) {
        element.querySelectorAll("mark").forEach((mark) => mark.replaceWith(...mark.childNodes));
        element.normalize();
        element.classList.remove("match", "current");
        if (marker) marker(element);
      }
    },
  };
}
