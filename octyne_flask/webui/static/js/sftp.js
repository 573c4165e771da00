// The Files tab's SFTP panel: the address and login name to paste into FileZilla or WinSCP,
// and the host key fingerprint their first-connection prompt shows.

import { getJson } from "./api.js";
import { h, replaceChildren, toast } from "./dom.js";

/** `sftp://admin.survival@host:2022` for the host this page was loaded from. */
function sftpUrl(username, port) {
  return `sftp://${encodeURIComponent(username)}@${window.location.hostname}:${port}`;
}

/** Copy `text`; where the Clipboard API is missing (plain HTTP), select the field for Ctrl+C instead. */
async function copy(text, field) {
  try {
    await navigator.clipboard.writeText(text);
    toast("Copied the SFTP address.");
  } catch {
    field.select();
    toast("Press Ctrl+C to copy the selected address.");
  }
}

/** The panel for server `id`: hidden until the daemon says SFTP is served (and for `@local`, who has no login). */
export function createSftpPanel(id) {
  const panel = h("section", { class: "sftp-panel", "aria-label": "SFTP access", hidden: true });
  getJson(`/server/${encodeURIComponent(id)}/sftp`).then((sftp) => {
    if (!sftp.enabled || !sftp.username) return;
    const address = sftpUrl(sftp.username, sftp.port);
    const field = h("input", { type: "text", readonly: true, value: address, "aria-label": "SFTP address", class: "sftp-address" });
    replaceChildren(panel,
      h("div", { class: "sftp-copy" }, h("h2", { text: "SFTP" }), field,
        h("button", { type: "button", class: "secondary", text: "Copy", onclick: () => copy(address, field) })),
      h("details", {},
        h("summary", { text: "Connection details (FileZilla, WinSCP)" }),
        h("dl", { class: "sftp-details" },
          h("dt", { text: "Host" }), h("dd", { text: window.location.hostname }),
          h("dt", { text: "Port" }), h("dd", { text: sftp.port }),
          h("dt", { text: "Username" }), h("dd", { text: sftp.username }),
          h("dt", { text: "Password" }), h("dd", { text: "your dashboard password" }),
          h("dt", { text: "Host key" }), h("dd", { class: "mono", text: sftp.hostKey }))));
    panel.hidden = false;
  }).catch(() => {}); // the file listing below reports what went wrong
  return panel;
}
