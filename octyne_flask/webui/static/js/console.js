// The console tab: live output with ANSI colours over the server's whole history (scroll up to
// load older lines), search, a follow-live switch, a time-range download, and an input line whose
// up-arrow recalls the user's own earlier commands (kept by the daemon, so they survive a reload).

import { ownInputs, rangeDownloadUrl } from "./consolehistory.js";
import { createConsoleSearch } from "./consolesearch.js";
import { openConsole } from "./consolesocket.js";
import { createConsoleView } from "./consoleview.js";
import { h, startDownload, toast } from "./dom.js";
import { rememberedUser } from "./session.js";

const HISTORY_SIZE = 100;
const HOUR_MS = 3_600_000;

/** `YYYY-MM-DDTHH:MM` in local time, as a datetime-local input shows it. */
function localInputValue(ms) {
  const date = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000);
  return date.toISOString().slice(0, 16);
}

function createDownload(id) {
  const from = h("input", { type: "datetime-local", value: localInputValue(Date.now() - HOUR_MS) });
  const to = h("input", { type: "datetime-local", value: localInputValue(Date.now() + 60_000) });
  const button = h("button", { type: "button", class: "secondary", text: "Download" });
  button.addEventListener("click", async () => {
    const start = new Date(from.value).getTime();
    const end = new Date(to.value).getTime();
    if (Number.isNaN(start) || Number.isNaN(end) || start > end) {
      toast("Choose a start time before the end time.", "error");
      return;
    }
    startDownload(await rangeDownloadUrl(id, start, end + 59_999), `${id}-console.txt`);
  });
  return h("details", { class: "console-download" }, h("summary", { text: "Download…" }),
    h("div", { class: "download-range" }, h("label", {}, "From ", from), h("label", {}, "To ", to), button));
}

/** Mount the console for server `id` into `container`; returns the cleanup function. */
export function mountConsole(container, id) {
  const output = h("div", {
    class: "terminal", role: "log", "aria-live": "off", "aria-label": `Console output of ${id}`, tabindex: "0",
  });
  const jump = h("button", { type: "button", class: "jump secondary", text: "↓ New output", hidden: true });
  const status = h("p", { class: "console-status", "data-state": "connecting", text: "Connecting…" });
  const followBox = h("input", { type: "checkbox", checked: true });
  const input = h("input", {
    id: "console-input", class: "console-input", autocomplete: "off", spellcheck: "false",
    placeholder: "Type a command and press Enter", "aria-label": `Command for ${id}`,
  });
  const sendButton = h("button", { type: "submit", class: "primary", text: "Send" });
  const readOnlyNote = h("p", { class: "notice", hidden: true },
    h("span", { class: "badge read-only", text: "read-only" }), " You can watch this console but not send commands.");
  const form = h("form", { class: "console-form" }, input, sendButton);

  const view = createConsoleView(id, output, {
    onFollowing(following) {
      followBox.checked = following;
      if (following) jump.hidden = true;
    },
    onUnseenOutput() {
      jump.hidden = false;
    },
    onProblem(failure) {
      toast(`Console history: ${failure.message}`, "error");
    },
  });
  const toolbar = h("div", { class: "console-toolbar" }, createConsoleSearch(id, view),
    h("label", { class: "follow-toggle" }, followBox, " Follow live output"), createDownload(id));
  container.append(status, toolbar, h("div", { class: "terminal-wrap" }, output, jump), readOnlyNote, form);

  followBox.addEventListener("change", () => (followBox.checked ? view.follow() : view.unfollow()));
  jump.addEventListener("click", async () => {
    await view.follow();
    output.focus();
  });

  const history = [];
  let historyIndex = 0;
  let draft = "";
  ownInputs(id, rememberedUser(), HISTORY_SIZE).then((earlier) => {
    history.unshift(...earlier);
    historyIndex += earlier.length;
  }, () => {}); // without them the up-arrow only knows this page's commands

  // Send works only while connected (Enter does nothing then); the line typed stays in the box meanwhile.
  let connected = false;
  let readOnly = false;
  const updateSending = () => {
    input.disabled = readOnly;
    sendButton.disabled = readOnly || !connected;
  };
  updateSending();
  const connection = openConsole(id, {
    onState(state, detail) {
      status.dataset.state = state;
      status.textContent = detail;
      connected = state === "connected";
      updateSending();
    },
    onSettings(settings) {
      readOnly = Boolean(settings.readOnly);
      readOnlyNote.hidden = !readOnly;
      updateSending();
    },
    onOutput(text, { isScrollback, seq }) {
      if (seq === null) return; // an empty scrollback: nothing printed yet
      view.receive((isScrollback ? text.slice(1) : text).split("\n"), seq);
    },
    onError(message) {
      view.note(`[Dashboard] ${message}`);
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
    view.follow();
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
