// The accounts page: list, create, change password, rename, delete.

import { ApiError, getJson, request, sendJson } from "./api.js";
import { confirmDialog, formDialog, promptDialog } from "./dialogs.js";
import { h, replaceChildren, toast } from "./dom.js";
import { rememberedUser, rememberUser } from "./session.js";

const USERNAME_PATTERN = "[a-zA-Z0-9_\\-@]+";

/** Run one account change; API errors become a toast. Returns whether it worked. */
async function change(action, success) {
  try {
    await action();
    toast(success);
    return true;
  } catch (failure) {
    if (failure instanceof ApiError) toast(failure.message, "error");
    return false;
  }
}

function updateAccount(oldName, body) {
  return sendJson("PATCH", "/accounts", body, { username: oldName });
}

export function mountAccounts(section) {
  const list = h("ul", { class: "accounts", "aria-label": "Accounts" });
  const username = h("input", { id: "new-username", name: "username", required: true, autocomplete: "off", pattern: USERNAME_PATTERN, title: "Letters, numbers, -, _ or @" });
  const password = h("input", { id: "new-password", name: "password", type: "password", required: true, autocomplete: "new-password" });
  const form = h("form", { class: "card inline-form", "aria-labelledby": "create-account-title" },
    h("h2", { id: "create-account-title", text: "Create account" }),
    h("div", { class: "field" }, h("label", { for: "new-username", text: "Username" }), username),
    h("div", { class: "field" }, h("label", { for: "new-password", text: "Password" }), password),
    h("button", { type: "submit", class: "primary", text: "Create" }));
  section.append(h("div", { class: "view-header" }, h("h1", { text: "Accounts" })), list, form);
  let active = true;

  async function reload() {
    let names;
    try {
      names = await getJson("/accounts");
    } catch {
      return;
    }
    if (!active) return;
    names.sort((a, b) => a.localeCompare(b));
    replaceChildren(list, names.map(accountRow));
  }

  function accountRow(name) {
    const isMe = name === rememberedUser();
    return h("li", { class: "account", "data-account": name },
      h("span", { class: "account-name", text: name }),
      isMe ? h("span", { class: "badge running", text: "you" }) : null,
      h("span", { class: "actions" },
        h("button", { type: "button", class: "secondary", text: "Change password…", "aria-label": `Change password of ${name}`, onclick: () => changePassword(name) }),
        h("button", { type: "button", class: "secondary", text: "Rename…", "aria-label": `Rename ${name}`, onclick: () => rename(name, isMe) }),
        h("button", { type: "button", class: "danger", text: "Delete…", "aria-label": `Delete ${name}`, onclick: () => remove(name, isMe) })));
  }

  async function changePassword(name) {
    const answer = await formDialog({
      title: `Change password of ${name}`, confirmLabel: "Change password", forUser: name,
      fields: [
        { name: "password", label: "New password", type: "password", autocomplete: "new-password" },
        { name: "again", label: "Repeat the new password", type: "password", autocomplete: "new-password" },
      ],
    });
    if (!answer) return;
    if (answer.password !== answer.again) {
      toast("The two passwords differ; nothing was changed.", "error");
      return;
    }
    await change(() => updateAccount(name, { username: "", password: answer.password }), `Changed the password of ${name}`);
  }

  async function rename(name, isMe) {
    const newName = await promptDialog({
      title: `Rename ${name}`, label: "New username", value: name, confirmLabel: "Rename",
      message: isMe ? "This is your own account: renaming it ends your session, and you log in again with the new name." : undefined,
    });
    if (!newName || newName === name) return;
    if (await change(() => updateAccount(name, { username: newName, password: "" }), `Renamed ${name} to ${newName}`)) {
      if (isMe) rememberUser(newName);
      await reload();
    }
  }

  async function remove(name, isMe) {
    const sure = await confirmDialog({
      title: `Delete ${name}?`,
      message: isMe
        ? "This is YOUR account. Deleting it logs you out at once and you cannot log in with it again."
        : `${name} will no longer be able to log in; their sessions and consoles end at once.`,
      confirmLabel: isMe ? "Delete my account" : "Delete",
    });
    if (!sure) return;
    if (await change(() => request("DELETE", "/accounts", { query: { username: name } }), `Deleted ${name}`)) await reload();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = username.value;
    if (await change(() => sendJson("POST", "/accounts", { username: name, password: password.value }), `Created ${name}`)) {
      form.reset();
      await reload();
    }
  });

  reload();
  return () => {
    active = false;
  };
}
