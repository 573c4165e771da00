// The console-v2 WebSocket for one server: a fresh one-time ticket per
// connection, a ping every 10 s (the daemon drops clients silent for 30 s),
// and reconnection with exponential backoff when the socket drops. A
// reconnection asks for the lines after the last one received (`?since=`),
// so a network blip shows neither a gap nor a duplicate.

import { ApiError, apiUrl, reportExpired, ticket } from "./api.js";

const PING_MS = 10_000;
const FIRST_RETRY_MS = 1_000;
const MAX_RETRY_MS = 30_000;
// Closes that retrying cannot fix: forbidden, no such server.
const FINAL_CLOSE_CODES = new Set([4403, 4404]);

function socketUrl(id, oneTimeTicket, since) {
  const url = new URL(apiUrl(`/server/${encodeURIComponent(id)}/console`, { ticket: oneTimeTicket, since }));
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.toString();
}

/**
 * Connect to `id`'s console. Callbacks: `onState(state, detail)` with state
 * "connecting" | "connected" | "reconnecting" | "closed"; `onSettings({readOnly})`;
 * `onOutput(text, {isScrollback, seq, missed})` (`seq` numbers the first line); `onError(message)`.
 * Returns {send(line), close()}.
 */
export function openConsole(id, { onState, onSettings, onOutput, onError }) {
  let socket = null;
  let closedByUs = false;
  let attempt = 0;
  let retryTimer = null;
  let pingTimer = null;
  let pingId = 0;
  let lastSeq = null; // the newest line received, to resume after

  function scheduleRetry(reason) {
    const delay = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** attempt) * (0.8 + Math.random() * 0.4);
    attempt += 1;
    onState("reconnecting", `${reason} Reconnecting in ${Math.round(delay / 1000)} s…`);
    retryTimer = setTimeout(connect, delay);
  }

  async function connect() {
    if (closedByUs) return;
    onState("connecting", "Connecting…");
    let oneTimeTicket;
    try {
      oneTimeTicket = await ticket();
    } catch (failure) {
      // 401 and unreachable already show their page; other errors are worth retrying.
      if (failure instanceof ApiError && failure.status !== 401 && !closedByUs) scheduleRetry(failure.message);
      return;
    }
    if (closedByUs) return;
    let scrollbackPending = lastSeq === null;
    socket = new WebSocket(socketUrl(id, oneTimeTicket, lastSeq ?? undefined), "console-v2");
    socket.addEventListener("open", () => {
      onState("connected", "Connected");
      pingTimer = setInterval(() => send({ type: "ping", id: String(++pingId) }), PING_MS);
    });
    socket.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        onError("The daemon sent a message that is not JSON.");
        return;
      }
      if (message.type === "settings") onSettings({ readOnly: Boolean(message.readOnly) });
      else if (message.type === "output") {
        attempt = 0; // a working connection resets the backoff
        const data = String(message.data ?? "");
        const seq = Number.isInteger(message.seq) ? message.seq : null;
        if (seq !== null) {
          const lines = data.split("\n").length - (scrollbackPending && data.startsWith("\n") ? 1 : 0);
          lastSeq = Math.max(lastSeq ?? 0, seq + lines - 1);
        }
        onOutput(data, { isScrollback: scrollbackPending, seq, missed: message.missed || 0 });
        scrollbackPending = false;
      } else if (message.type === "error") onError(String(message.message ?? "Unknown error"));
    });
    socket.addEventListener("close", (event) => {
      clearInterval(pingTimer);
      socket = null;
      if (closedByUs) return;
      if (event.code === 4401) {
        reportExpired(new ApiError(401, { error: event.reason }));
      } else if (FINAL_CLOSE_CODES.has(event.code)) {
        onState("closed", event.reason || `Console closed (code ${event.code}).`);
      } else {
        scheduleRetry(event.reason ? `Disconnected: ${event.reason}.` : "Disconnected.");
      }
    });
  }

  function send(message) {
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(JSON.stringify(message));
    return true;
  }

  connect();
  return {
    send: (line) => send({ type: "input", data: line }),
    close() {
      closedByUs = true;
      clearTimeout(retryTimer);
      clearInterval(pingTimer);
      if (socket) socket.close(1000, "Dashboard closed the console");
    },
  };
}
