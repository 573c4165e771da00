// Start-up, hash routing, the login page and the two problem pages
// (session expired, daemon unreachable). Each view is `mount(section, params)`
// returning a cleanup function that stops its timers and sockets.

import { ApiError, getJson, onApiProblem } from "./api.js";
import { h, replaceChildren } from "./dom.js";
import { login, logout, rememberedUser, forgetUser } from "./session.js";
import { mountServerList } from "./servers.js";
import { mountServerPage } from "./server.js";
import { mountAccounts } from "./accounts.js";
import { mountAccess } from "./accesspage.js";
import { mountConfig } from "./config.js";
import { loadMe, may } from "./me.js";
import { currentNode, useNode } from "./node.js";

const main = document.getElementById("main");
const topbar = document.getElementById("topbar");
let cleanup = null;
let problemShown = false;
let renders = 0;

const ROUTES = [
  { pattern: /^\/?$/, nav: "servers", title: "Servers", mount: (section) => mountServerList(section) },
  {
    pattern: /^\/server\/([^/]+)\/?$/, nav: "servers", title: "Console",
    mount: (section, match) => mountServerPage(section, decodeSegment(match[1]), { tab: "console" }),
  },
  {
    pattern: /^\/server\/([^/]+)\/files(\/.*)?$/, nav: "servers", title: "Files",
    mount: (section, match) => mountServerPage(section, decodeSegment(match[1]), {
      tab: "files", path: (match[2] || "/").split("/").map(decodeSegment).join("/"),
    }),
  },
  {
    pattern: /^\/server\/([^/]+)\/backups$/, nav: "servers", title: "Backups",
    mount: (section, match) => mountServerPage(section, decodeSegment(match[1]), { tab: "backups" }),
  },
  {
    pattern: /^\/server\/([^/]+)\/schedules$/, nav: "servers", title: "Schedules",
    mount: (section, match) => mountServerPage(section, decodeSegment(match[1]), { tab: "schedules" }),
  },
  { pattern: /^\/accounts$/, nav: "accounts", title: "Accounts", mount: (section) => mountAccounts(section) },
  { pattern: /^\/access$/, nav: "access", title: "Access", mount: (section) => mountAccess(section) },
  { pattern: /^\/config$/, nav: "config", title: "Config", mount: (section) => mountConfig(section) },
];

function currentPath() {
  return location.hash.replace(/^#/, "") || "/";
}

const NODE_PREFIX = /^\/node\/([^/]+)(\/.*)$/;

/**
 * The page's path without its `/node/<name>` prefix, after pointing the API at that node
 * (looked up in this node's `GET /nodes`); null when no such node has a URL.
 */
async function routeNode(path) {
  useNode(null);
  const match = path.match(NODE_PREFIX);
  if (!match) return path;
  const name = decodeSegment(match[1]);
  const node = (await getJson("/nodes")).find((candidate) => candidate.name === name);
  if (!node || !node.url) return null;
  if (!node.self) useNode({ name: node.name, url: node.url });
  return match[2];
}

/** A path segment from the address bar; a malformed %-escape is taken literally. */
function decodeSegment(segment) {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** Stop the current view and show `content` (a node) as the whole page. */
function show(content, { signedIn }) {
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  // A question asked by the page being left must not linger over the next one (closing = cancel).
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  topbar.hidden = !signedIn;
  replaceChildren(main, content);
}

async function render() {
  problemShown = false;
  if (!rememberedUser()) {
    showLogin();
    return;
  }
  const generation = ++renders;
  let path;
  try {
    path = await routeNode(currentPath());
    await loadMe(); // what this account may do (on the page's node) decides which links and buttons it sees
  } catch (failure) {
    // An ended session or an unreachable daemon shows its own page; another node's failure is shown here.
    const ownSessionEnded = failure instanceof ApiError && failure.status === 401 && !currentNode();
    if (failure instanceof ApiError && !ownSessionEnded && generation === renders) showNodeProblem(failure.message);
    return;
  }
  if (generation !== renders) return; // another navigation started meanwhile
  const route = path === null ? null : ROUTES.find((candidate) => candidate.pattern.test(path));
  const section = h("section", { class: "view" });
  show(section, { signedIn: true });
  document.getElementById("whoami").textContent = rememberedUser();
  for (const link of topbar.querySelectorAll("[data-nav]")) {
    if (route && link.dataset.nav === route.nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
    link.parentElement.hidden = Boolean(link.dataset.permission) && !may(link.dataset.permission);
  }
  if (!route) {
    document.title = "Not found · Octyne";
    section.append(h("h1", { text: "Page not found" }), h("p", {}, h("a", { href: "#/", text: "Back to servers" })));
    return;
  }
  document.title = `${route.title} · Octyne`;
  cleanup = route.mount(section, path.match(route.pattern)) || null;
}

function showNodeProblem(message) {
  const section = h("section", { class: "view" },
    h("h1", { text: "Node unavailable" }), h("p", { text: message }),
    h("p", {}, h("a", { href: "#/", text: "Back to servers" })));
  show(section, { signedIn: true });
}

function showLogin(notice = "") {
  document.title = "Log in · Octyne";
  const error = h("p", { class: "form-error", role: "alert" });
  const username = h("input", { id: "login-username", name: "username", autocomplete: "username", required: true });
  const password = h("input", {
    id: "login-password", name: "password", type: "password", autocomplete: "current-password", required: true,
  });
  const submit = h("button", { type: "submit", class: "primary", text: "Log in" });
  const form = h("form", { class: "card login", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title", text: "Octyne" }),
    notice ? h("p", { class: "notice", text: notice }) : null,
    h("div", { class: "field" }, h("label", { for: "login-username", text: "Username" }), username),
    h("div", { class: "field" }, h("label", { for: "login-password", text: "Password" }), password),
    error, submit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    if (/[^\u0000-\u00ff]/.test(username.value + password.value)) {
      error.textContent = "Usernames and passwords sent by the browser may only use Latin-1 characters.";
      return;
    }
    submit.disabled = true;
    try {
      await login(username.value, password.value);
      render();
    } catch (failure) {
      error.textContent = failure instanceof ApiError ? failure.message : "The Octyne API cannot be reached.";
      password.select();
    } finally {
      submit.disabled = false;
    }
  });
  show(h("div", { class: "centered" }, form), { signedIn: false });
  username.focus();
}

function showProblem({ title, message, actionLabel, action, retryEvery }) {
  if (problemShown) return;
  problemShown = true;
  document.title = `${title} · Octyne`;
  const button = h("button", { type: "button", class: "primary", text: actionLabel, onclick: action });
  const page = h("div", { class: "centered" },
    h("div", { class: "card problem", role: "alert" }, h("h1", { text: title }), h("p", { text: message }), button));
  show(page, { signedIn: false });
  button.focus();
  if (retryEvery) {
    const timer = setInterval(async () => {
      try {
        await fetch(new URL("api/", document.baseURI), { cache: "no-store" });
        render();
      } catch {
        // still down: keep waiting
      }
    }, retryEvery);
    cleanup = () => clearInterval(timer);
  }
}

onApiProblem({
  expired: () => {
    forgetUser();
    showProblem({
      title: "Session expired",
      message: "Your session has ended (logged out elsewhere, or the account changed). Log in again to continue.",
      actionLabel: "Log in again",
      action: () => showLogin(),
    });
  },
  unreachable: () => showProblem({
    title: "Octyne is unreachable",
    message: "The dashboard cannot reach the Octyne API. The daemon may be stopped or restarting, or the network is down. This page retries every 5 seconds.",
    actionLabel: "Try again",
    action: () => render(),
    retryEvery: 5000,
  }),
});

document.getElementById("logout").addEventListener("click", async () => {
  try {
    await logout();
  } catch (failure) {
    if (!(failure instanceof ApiError)) return; // unreachable: its page is already shown
  }
  showLogin("You have been logged out.");
});

window.addEventListener("hashchange", render);
getJson("/").then(render, () => {});
