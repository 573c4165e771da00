// Logging in and out. The token lives only in the HttpOnly cookie the daemon
// sets; the page remembers just the username, to greet and to warn before self-deletion.

import { getJson, request } from "./api.js";

const USER_KEY = "octyne.user";

export function rememberedUser() {
  return localStorage.getItem(USER_KEY);
}

export function forgetUser() {
  localStorage.removeItem(USER_KEY);
}

/** Rename the remembered user after the account was renamed through the dashboard. */
export function rememberUser(username) {
  localStorage.setItem(USER_KEY, username);
}

/** `GET /api/login?cookie=true` with the credentials in headers; throws ApiError on 401/429. */
export async function login(username, password) {
  await request("GET", "/login", {
    query: { cookie: "true" },
    headers: { Username: username, Password: password },
    authenticated: false,
  });
  rememberUser(username);
}

/** `GET /api/logout`: the daemon forgets the token and clears the cookie. */
export async function logout() {
  try {
    await getJson("/logout");
  } finally {
    forgetUser();
  }
}
