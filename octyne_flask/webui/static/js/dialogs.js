// Modal dialogs on the native <dialog> element: it traps focus, closes on
// Escape and returns focus to the opener, so every action stays keyboard-usable.

import { h } from "./dom.js";

let counter = 0;

function field({ name, label, type = "text", value = "", options, required = true, autocomplete = "off" }) {
  const id = `dialog-field-${++counter}`;
  const control = options
    ? h("select", { id, name }, options.map(([optionValue, text]) =>
      h("option", { value: optionValue, text, selected: optionValue === value })))
    : h("input", { id, name, type, value, required, autocomplete, spellcheck: "false" });
  return h("div", { class: "field" }, h("label", { for: id, text: label }), control);
}

/**
 * A modal form: `body` (nodes) between the title and the buttons; resolves to
 * `collect(form)` on confirm, or null on cancel.
 */
function modalForm({ title, body, confirmLabel, danger = false, collect }) {
  return new Promise((resolve) => {
    const form = h("form", { method: "dialog" },
      h("h2", { text: title }),
      body,
      h("div", { class: "dialog-actions" },
        h("button", { type: "button", class: "secondary", value: "cancel", text: "Cancel" }),
        h("button", { type: "submit", class: danger ? "danger" : "primary", value: "ok", text: confirmLabel })));
    const dialog = h("dialog", { "aria-label": title }, form);
    let result = null;
    form.querySelector("button[value=cancel]").addEventListener("click", () => dialog.close());
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      result = collect(form);
      dialog.close();
    });
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(result);
    });
    document.body.append(dialog);
    dialog.showModal();
    const first = form.querySelector("input:not([hidden]), select");
    if (first) {
      first.focus();
      if (first.select) first.select();
    } else {
      form.querySelector("button[type=submit]").focus();
    }
  });
}

/**
 * Show a form in a modal; resolves to {name: value} on confirm or null on cancel.
 * `fields` may be empty (a plain confirmation); `forUser` names the account a
 * password form belongs to.
 */
export function formDialog({ title, message, fields = [], confirmLabel = "OK", danger = false, forUser = null }) {
  return modalForm({
    title, confirmLabel, danger,
    body: [
      // Password forms name their account so password managers (and Chromium's checks) know whose it is.
      forUser !== null ? h("input", { type: "text", autocomplete: "username", value: forUser, readonly: true, hidden: true }) : null,
      message ? h("p", { class: "dialog-message", text: message }) : null,
      fields.map(field),
    ],
    collect: (form) => Object.fromEntries(new FormData(form).entries()),
  });
}

/** Yes/no; resolves true only on explicit confirmation. */
export async function confirmDialog({ title, message, confirmLabel = "Confirm", danger = true }) {
  return (await formDialog({ title, message, confirmLabel, danger })) !== null;
}

/** One text value, or null when cancelled. */
export async function promptDialog({ title, label, value = "", confirmLabel = "OK", type = "text", message }) {
  const result = await formDialog({ title, message, confirmLabel, fields: [{ name: "value", label, value, type }] });
  return result === null ? null : result.value;
}

/**
 * A list of checkboxes; resolves to the checked values (in `options` order) or null when cancelled.
 * `options` is [[value, label], ...].
 */
export function checklistDialog({ title, message, options, checked = [], confirmLabel = "OK" }) {
  return modalForm({
    title, confirmLabel,
    body: [
      message ? h("p", { class: "dialog-message", text: message }) : null,
      h("fieldset", { class: "checklist" }, h("legend", { class: "visually-hidden", text: title }),
        options.map(([value, label]) => h("label", { class: "check" },
          h("input", { type: "checkbox", value, checked: checked.includes(value) }), ` ${label}`))),
    ],
    collect: (form) => [...form.querySelectorAll("input[type=checkbox]:checked")].map((box) => box.value),
  });
}
