// The console tab: scrollback and live output with ANSI colours, auto-scroll
// that pauses while the user reads older output, and an input line with history.

import { initialState, parseLine } from "./ansi.js";
import { openConsole } from "./consolesocket.js";
import { h } from "./dom.js";

const MAX_LINES = 5000;
const HISTORY_SIZE = 100;
const histories = new Map(); // per server, kept while the page is open

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

/** Mount the console for server `id` into `container`; returns the cleanup function. */
export function mountConsole(container, id) {
  const output = h("div", {
    class: "terminal", role: "log", "aria-live": "off", "aria-label": `Console output of ${id}`, tabindex: "0",
  });
  const jump = h("button", { type: "button", class: "jump secondary", text: "↓ New output", hidden: true });
  const status = h("p", { class: "console-status", "data-state": "connecting", text: "Connecting…" });
  const input = h("input", {
    id: "console-input", class: "console-input", autocomplete: "off", spellcheck: "false",
    placeholder: "Type a command and press Enter", "aria-label": `Command for ${id}`,
  });
  const sendButton = h("button", { type: "submit", class: "primary", text: "Send" });
  const readOnlyNote = h("p", { class: "notice read-only-note", hidden: true },
    h("span", { class: "badge read-only", text: "read-only" }), " You can watch this console but not send commands.");
  const form = h("form", { class: "console-form" }, input, sendButton);
  container.append(status, h("div", { class: "terminal-wrap" }, output, jump), readOnlyNote, form);

  let ansi = initialState();
  const history = histories.get(id) || [];
  histories.set(id, history);
  let historyIndex = history.length;
  let draft = "";
  let following = true;

  const atBottom = () => output.scrollHeight - output.scrollTop - output.clientHeight < 4;
  const scrollToEnd = () => {
    output.scrollTop = output.scrollHeight;
    following = true;
    jump.hidden = true;
  };
  output.addEventListener("scroll", () => {
    following = atBottom();
    if (following) jump.hidden = true;
  });
  jump.addEventListener("click", () => {
    scrollToEnd();
    output.focus();
  });

  function appendText(text) {
    const fragment = document.createDocumentFragment();
    for (const line of text.split("\n")) {
      fragment.append(h("div", { class: "line" }, parseLine(line, ansi).map(segmentElement)));
    }
    output.append(fragment);
    while (output.childElementCount > MAX_LINES) output.firstElementChild.remove();
    if (following) output.scrollTop = output.scrollHeight;
    else jump.hidden = false;
  }

  const connection = openConsole(id, {
    onState(state, detail) {
      status.dataset.state = state;
      status.textContent = detail;
    },
    onSettings({ readOnly }) {
      readOnlyNote.hidden = !readOnly;
      input.disabled = readOnly;
      sendButton.disabled = readOnly;
    },
    onOutput(text, isScrollback) {
      if (isScrollback) {
        // Every (re)connection starts with the whole scrollback: replace what we show.
        output.replaceChildren();
        ansi = initialState();
        const body = text.startsWith("\n") ? text.slice(1) : text;
        if (body) appendText(body);
        scrollToEnd();
      } else {
        appendText(text);
      }
    },
    onError(message) {
      appendText(`[Dashboard] ${message}`);
    },
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const line = input.value;
    if (!line) return;
    if (!connection.send(line)) {
      status.textContent = "Not connected: the command was not sent.";
      return;
    }
    if (history[history.length - 1] !== line) history.push(line);
    if (history.length > HISTORY_SIZE) history.shift();
    historyIndex = history.length;
    draft = "";
    input.value = "";
    scrollToEnd();
  });

  input.addEventListener("keydown", (event) => {
    if (event.key === "ArrowUp" && historyIndex > 0) {
      if (historyIndex === history.length) draft = input.value;
      historyIndex -= 1;
      input.value = history[historyIndex];
    } else if (event.key === "ArrowDown" && historyIndex < history.length) {
      historyIndex += 1;
      input.value = historyIndex === history.length ? draft : history[historyIndex];
    } else {
      return;
    }
    event.preventDefault();
    input.setSelectionRange(input.value.length, input.value.length);
  });

  input.focus({ preventScroll: true });
  return () => connection.close();
}
