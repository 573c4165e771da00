// A list of running file tasks (uploads, compressions) with a progress bar each.

import { h } from "./dom.js";

export function createTaskList() {
  const element = h("ul", { class: "tasks", "aria-label": "File tasks", "aria-live": "polite" });

  /** Add a task row; `progress(null)` shows an indeterminate bar. */
  function add(label) {
    const bar = h("progress", { max: "1", "aria-label": label });
    const state = h("span", { class: "task-state", text: "Waiting…" });
    const row = h("li", { class: "task", "data-state": "running" }, h("span", { class: "task-name", text: label }), bar, state);
    element.append(row);
    const finish = (kind, message) => {
      row.dataset.state = kind;
      state.textContent = message;
      if (kind === "done") {
        bar.value = 1;
        setTimeout(() => row.remove(), 4000);
      } else {
        bar.remove();
        row.append(h("button", { type: "button", class: "secondary small", text: "Dismiss", onclick: () => row.remove() }));
      }
    };
    return {
      progress(fraction, text) {
        if (fraction === null || fraction === undefined) bar.removeAttribute("value");
        else bar.value = Math.max(0, Math.min(1, fraction));
        state.textContent = text ?? (fraction == null ? "Working…" : `${Math.round(fraction * 100)}%`);
      },
      done: (message = "Done") => finish("done", message),
      fail: (message) => finish("failed", message),
    };
  }

  return { element, add };
}
