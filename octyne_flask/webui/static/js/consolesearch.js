// The console's search bar: asks the daemon's history (substring, or a regular expression), then
// steps through the matches newest first with previous/next, showing each in the console and
// highlighting every match on screen.

import { ApiError } from "./api.js";
import { historyPage } from "./consolehistory.js";
import { h } from "./dom.js";

const MATCHES_PER_PAGE = 200;

const escapeRegExp = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Wrap every match of `pattern` inside `element`'s text nodes in <mark> (a match across styles is not wrapped). */
function wrapMatches(element, pattern) {
  const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
  const nodes = [];
  while (walker.nextNode()) nodes.push(walker.currentNode);
  for (const node of nodes) {
    const text = node.nodeValue;
    const parts = [];
    let at = 0;
    pattern.lastIndex = 0;
    for (let match = pattern.exec(text); match; match = pattern.exec(text)) {
      if (!match[0]) {
        pattern.lastIndex += 1; // an empty match would loop forever
        continue;
      }
      parts.push(text.slice(at, match.index), h("mark", { text: match[0] }));
      at = match.index + match[0].length;
    }
    if (!parts.length) continue;
    parts.push(text.slice(at));
    node.replaceWith(...parts.filter((part) => part !== ""));
  }
}

/** A function that marks a line the daemon reported (`seqs`) or that matches here too (live lines, later). */
function lineMarker(query, regex, seqs) {
  let pattern = null;
  try {
    pattern = new RegExp(regex ? query : escapeRegExp(query), regex ? "g" : "gi");
  } catch {
    pattern = null; // Python syntax JavaScript does not know: whole lines are still highlighted
  }
  return (element) => {
    if (!element.dataset.seq || element.classList.contains("marker")) return;
    const text = element.textContent;
    if (pattern) pattern.lastIndex = 0;
    if (!seqs.has(Number(element.dataset.seq)) && !(pattern && pattern.test(text))) return;
    element.classList.add("match");
    if (pattern) wrapMatches(element, pattern);
  };
}

/** Mount the search bar for server `id` above the console `view`. */
export function createConsoleSearch(id, view) {
  const input = h("input", { type: "search", class: "search-input", "aria-label": "Search the console history",
    placeholder: "Search the whole history", autocomplete: "off", spellcheck: "false" });
  const regexBox = h("input", { type: "checkbox", id: `console-regex-${id}` });
  const previous = h("button", { type: "button", class: "secondary", text: "↑", title: "Previous (older) match",
    "aria-label": "Previous match", disabled: true });
  const next = h("button", { type: "button", class: "secondary", text: "↓", title: "Next (newer) match",
    "aria-label": "Next match", disabled: true });
  const status = h("span", { class: "search-status", role: "status" });
  const form = h("form", { class: "console-search", role: "search" },
    input, h("label", { class: "regex-toggle" }, regexBox, " Regex"),
    h("button", { type: "submit", class: "secondary", text: "Search" }), previous, next, status);

  let matches = []; // ascending seqs of the matches found so far
  let seqs = new Set();
  let more = false; // older matches exist beyond matches[0]
  let index = -1;
  let query = null;

  function describe() {
    previous.disabled = !(index > 0 || more);
    next.disabled = !(index < matches.length - 1);
    if (!query) status.textContent = "";
    else if (!matches.length) status.textContent = "No matches";
    else status.textContent = `${index + 1} of ${matches.length}${more ? "+" : ""}`;
  }

  async function show() {
    describe();
    const element = await view.reveal(matches[index]);
    document.querySelectorAll(".terminal .line.current").forEach((line) => line.classList.remove("current"));
    if (element) element.classList.add("current");
  }

  async function ask(bounds) {
    try {
      return await historyPage(id, { q: query.text, regex: query.regex, limit: MATCHES_PER_PAGE, ...bounds });
    } catch (failure) {
      if (!(failure instanceof ApiError) || failure.status !== 400) throw failure;
      status.textContent = failure.message; // a bad or too slow regular expression
      return null;
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value;
    query = text ? { text, regex: regexBox.checked } : null;
    matches = [];
    seqs = new Set();
    more = false;
    index = -1;
    view.highlight(query ? lineMarker(query.text, query.regex, seqs) : null);
    describe();
    if (!query) return;
    status.textContent = "Searching…";
    const page = await ask({});
    if (!page) return;
    matches = page.lines.map((line) => line.seq);
    matches.forEach((seq) => seqs.add(seq));
    more = page.more;
    index = matches.length - 1;
    view.highlight(lineMarker(query.text, query.regex, seqs)); // now with the daemon's matches
    if (matches.length) await show();
    else describe();
  });

  previous.addEventListener("click", async () => {
    if (index === 0 && more) {
      const page = await ask({ before: matches[0] });
      if (!page) return;
      const older = page.lines.map((line) => line.seq);
      older.forEach((seq) => seqs.add(seq));
      matches = [...older, ...matches];
      index += older.length;
      more = page.more;
    }
    if (index > 0) index -= 1;
    await show();
  });

  next.addEventListener("click", async () => {
    if (index < matches.length - 1) index += 1;
    await show();
  });

  return form;
}
