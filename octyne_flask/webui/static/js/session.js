// Logging in and out. The token lives only in the HttpOnly cookie the daemon
// sets; the page remembers just the username, to greet and to warn before self-deletion.
// In a cluster a second token, sent to the other nodes (which cannot see the cookie),
// is kept in localStorage and revoked at logout.

import { getJson, request } from "./api.js";
import { clusterToken, setClusterToken } from "./node.js";

const USER_KEY = "octyne.user";

export function rememberedUser() {
  return localStorage.getItem(USER_KEY);
}

export function forgetUser() {
  localStorage.removeItem(USER_KEY);
  setClusterToken(null);
}

/** Rename the remembered user after the account was renamed through the dashboard. */
export function rememberUser(username) {
  localStorage.setItem(USER_KEY, username);
}

/**
 * `GET /api/login?cookie=true` with the credentials in headers; throws ApiError on 401/429.
 * When other nodes are listed, a second login gives the token for them.
 */
export async function login(username, password) {
  const headers = { Username: username, Password: password };
  await request("GET", "/login", { query: { cookie: "true" }, headers, authenticated: false, node: null });
  rememberUser(username);
  setClusterToken(null);
  const nodes = await getJson("/nodes", {}, null).catch(() => []);
  if (nodes.some((node) => !node.self && node.url)) {
    const answer = await request("GET", "/login", { headers, authenticated: false, node: null });
    setClusterToken((await answer.json()).token);
  }
}

/** `GET /api/logout`: the daemon forgets the token(s) and clears the cookie. */
export async function logout() {
  const token = clusterToken();
  try {
    await getJson("/logout", {}, null);
    // Sent as a header after the cookie is gone, so this revokes the cluster token, not the cookie's.
    if (token) await request("GET", "/logout", { headers: { Authorization: token }, node: null }).catch(() => {});
  } finally {
    forgetUser();
  }
}
