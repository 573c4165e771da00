// The Access page (administrators): accounts × servers with a role per cell,
// the `*` column (every server), the administrator switch, global permissions,
// the defaults for new accounts and the custom roles. Edits stay in the page
// until Save, which sends only what changed; the daemon's validation error is
// shown as it is.

import { ApiError, getJson, sendJson } from "./api.js";
import { checklistDialog, confirmDialog, promptDialog } from "./dialogs.js";
import { h, replaceChildren, toast } from "./dom.js";
import { may } from "./me.js";

const BUILT_IN = ["viewer", "operator"];
const EVERY_SERVER = "*";
const DEFAULTS = "defaults";
const CUSTOM = "(custom)";

/** JSON with sorted keys, so two equal entries compare equal whatever order their keys were set in. */
function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value).sort().map((key) => `${JSON.stringify(key)}:${canonical(value[key])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

const copy = (value) => JSON.parse(JSON.stringify(value));

export function mountAccess(section) {
  const status = h("p", { class: "notice" });
  const problem = h("p", { class: "form-error", role: "alert" });
  const grid = h("div", { class: "access-grid-wrap" });
  const roleList = h("ul", { class: "roles", "aria-label": "Roles" });
  const save = h("button", { type: "button", class: "primary", text: "Save", onclick: () => saveChanges() });
  const revert = h("button", { type: "button", class: "secondary", text: "Revert", onclick: () => reload() });
  section.append(
    h("div", { class: "view-header" }, h("h1", { text: "Access" })),
    status, grid,
    h("h2", { class: "section-title", text: "Roles" }), roleList,
    h("button", { type: "button", class: "secondary", text: "New role…", onclick: () => newRole() }),
    h("div", { class: "save-bar" }, problem, save, revert));
  const editable = may("access.edit");
  save.hidden = revert.hidden = !editable;

  let stored = null; // GET /access as last loaded
  let entries = {}; // account (or DEFAULTS) -> entry being edited
  let roles = {}; // custom role -> permissions being edited
  let servers = [];
  let active = true;

  async function reload() {
    let answer;
    let listed;
    try {
      [answer, listed] = await Promise.all([getJson("/access"), getJson("/servers")]);
    } catch {
      return;
    }
    if (!active) return;
    stored = answer;
    entries = { ...copy(answer.accounts), [DEFAULTS]: copy(answer.defaults) };
    roles = Object.fromEntries(Object.entries(answer.roles).filter(([name]) => !BUILT_IN.includes(name)));
    const named = new Set(Object.keys(listed.servers));
    for (const entry of Object.values(entries)) for (const server of Object.keys(entry.servers || {})) named.add(server);
    named.delete(EVERY_SERVER);
    servers = [...named].sort((a, b) => a.localeCompare(b));
    problem.textContent = "";
    status.textContent = answer.enabled
      ? "Access control is on. An account's permissions on a server are its * entry plus that server's entry."
      : "Access control is off: every account is an administrator, as in Octyne 1.4. Saving a change turns it on, keeping every account you do not change an administrator.";
    render();
  }

  function roleNames() {
    return [...BUILT_IN, ...Object.keys(roles).sort((a, b) => a.localeCompare(b))];
  }

  function render() {
    const head = h("tr", {}, h("th", { scope: "col", text: "Account" }), h("th", { scope: "col", text: "Administrator" }),
      h("th", { scope: "col", text: "Global permissions" }), h("th", { scope: "col", text: "* (every server)" }),
      servers.map((server) => h("th", { scope: "col", text: server })));
    const names = Object.keys(entries).filter((name) => name !== DEFAULTS).sort((a, b) => a.localeCompare(b));
    const rows = [...names, DEFAULTS].map(row);
    replaceChildren(grid, h("table", { class: "access-grid" },
      h("caption", { class: "visually-hidden", text: "Roles of each account on each server" }),
      h("thead", {}, head), h("tbody", {}, rows)));
    replaceChildren(roleList, roleNames().map(roleItem));
  }

  function row(name) {
    const entry = entries[name];
    const label = name === DEFAULTS ? "new accounts" : name;
    const admin = Boolean(entry.admin);
    const adminSwitch = name === DEFAULTS ? h("span", { class: "hint", text: "—" }) : h("input", {
      type: "checkbox", role: "switch", checked: admin, disabled: !editable, "aria-label": `${label} is an administrator`,
      onchange: (event) => {
        if (event.target.checked) entry.admin = true;
        else delete entry.admin;
        render();
      },
    });
    const globals = entry.permissions || [];
    const globalButton = h("button", {
      type: "button", class: "secondary small", disabled: admin || !editable,
      text: admin ? "all" : globals.length ? `${globals.length} global…` : "none…",
      "aria-label": `Global permissions of ${label}`, onclick: () => editGlobals(entry, label),
    });
    return h("tr", { "data-account": name },
      h("th", { scope: "row", text: name === DEFAULTS ? "New accounts (defaults)" : name }),
      h("td", {}, adminSwitch), h("td", {}, globalButton),
      [EVERY_SERVER, ...servers].map((server) => h("td", {}, grantSelect(entry, server, label, admin))));
  }

  function grantSelect(entry, server, label, admin) {
    if (admin) return h("span", { class: "hint", text: "all" });
    const grant = (entry.servers || {})[server];
    const current = grant === undefined ? "" : typeof grant === "string" ? grant : CUSTOM;
    const where = server === EVERY_SERVER ? "every server" : server;
    const options = [["", "none"], ...roleNames().map((role) => [role, role]),
      [CUSTOM, Array.isArray(grant) ? `custom (${grant.length})` : "custom…"]];
    const select = h("select", {
      "aria-label": `${label} on ${where}`, disabled: !editable, title: Array.isArray(grant) ? grant.join(", ") : null,
    }, options.map(([value, text]) => h("option", { value, text, selected: value === current })));
    select.addEventListener("change", async () => {
      if (select.value !== CUSTOM) {
        setGrant(entry, server, select.value || undefined);
        render();
        return;
      }
      const chosen = await checklistDialog({
        title: `Permissions of ${label} on ${where}`,
        options: stored.permissions.server.map((name) => [name, name]),
        checked: expand(grant), confirmLabel: "Set",
      });
      if (chosen !== null) setGrant(entry, server, chosen.length ? chosen : undefined);
      render();
    });
    return select;
  }

  function expand(grant) {
    if (grant === undefined) return [];
    const names = typeof grant === "string" ? [grant] : grant;
    return names.flatMap((name) => roles[name] || stored.roles[name] || [name]);
  }

  function setGrant(entry, server, grant) {
    entry.servers = entry.servers || {};
    if (grant === undefined) delete entry.servers[server];
    else entry.servers[server] = grant;
  }

  async function editGlobals(entry, label) {
    const chosen = await checklistDialog({
      title: `Global permissions of ${label}`,
      options: stored.permissions.global.map((name) => [name, name]),
      checked: entry.permissions || [], confirmLabel: "Set",
    });
    if (chosen === null) return;
    if (chosen.length) entry.permissions = chosen;
    else delete entry.permissions;
    render();
  }

  function roleItem(name) {
    const builtIn = BUILT_IN.includes(name);
    const permissions = builtIn ? stored.roles[name] : roles[name];
    return h("li", { class: "role", "data-role": name },
      h("span", { class: "account-name", text: name }),
      builtIn ? h("span", { class: "badge", text: "built-in" }) : null,
      h("span", { class: "role-permissions", text: permissions.join(", ") || "no permissions" }),
      builtIn || !editable ? null : h("span", { class: "actions" },
        h("button", { type: "button", class: "secondary small", text: "Edit…", "aria-label": `Edit role ${name}`, onclick: () => editRole(name) }),
        h("button", { type: "button", class: "danger small", text: "Delete", "aria-label": `Delete role ${name}`, onclick: () => deleteRole(name) })));
  }

  async function editRole(name) {
    const chosen = await checklistDialog({
      title: `Permissions of the role ${name}`,
      options: stored.permissions.server.map((permission) => [permission, permission]),
      checked: roles[name] || [], confirmLabel: "Set",
    });
    if (chosen === null) return;
    roles[name] = chosen;
    render();
  }

  async function newRole() {
    const name = await promptDialog({ title: "New role", label: "Role name", confirmLabel: "Next" });
    if (!name) return;
    if (roleNames().includes(name)) {
      toast(`There is already a role called ${name}.`, "error");
      return;
    }
    roles[name] = [];
    await editRole(name);
  }

  async function deleteRole(name) {
    if (!(await confirmDialog({
      title: `Delete the role ${name}?`,
      message: "Accounts still given this role must be changed first, or saving is refused.",
      confirmLabel: "Delete",
    }))) return;
    delete roles[name];
    render();
  }

  /** Only what differs from what was loaded: changed entries, changed or deleted roles, new defaults. */
  function changes() {
    const body = {};
    const accounts = {};
    for (const [name, entry] of Object.entries(entries)) {
      if (name !== DEFAULTS && canonical(entry) !== canonical(stored.accounts[name])) accounts[name] = entry;
    }
    if (Object.keys(accounts).length) body.accounts = accounts;
    if (canonical(entries[DEFAULTS]) !== canonical(stored.defaults)) body.defaults = entries[DEFAULTS];
    const changedRoles = {};
    for (const [name, permissions] of Object.entries(roles)) {
      if (canonical(permissions) !== canonical(stored.roles[name])) changedRoles[name] = permissions;
    }
    for (const name of Object.keys(stored.roles)) if (!BUILT_IN.includes(name) && !(name in roles)) changedRoles[name] = null;
    if (Object.keys(changedRoles).length) body.roles = changedRoles;
    return body;
  }

  async function saveChanges() {
    const body = changes();
    if (!Object.keys(body).length) {
      toast("Nothing to save.");
      return;
    }
    problem.textContent = "";
    save.disabled = true;
    try {
      await sendJson("PATCH", "/access", body);
      toast("Access saved.");
      await reload();
    } catch (failure) {
      if (failure instanceof ApiError) problem.textContent = failure.message;
    } finally {
      save.disabled = false;
    }
  }

  reload();
  return () => {
    active = false;
  };
}
