// Which node the current page works on: this one (same origin, login cookie) or
// another node of the cluster, reached at the URL it announces with the cluster
// token (tokens are shared through Redis). The hash route `#/node/<name>/...` picks it.

const TOKEN_KEY = "octyne.clusterToken";
let current = null; // null: the node serving this dashboard; else {name, url}

export function useNode(node) {
  current = node;
}

export function currentNode() {
  return current;
}

/** The token sent to other nodes (none: the dashboard works on this node only). */
export function clusterToken() {
  return localStorage.getItem(TOKEN_KEY);
}

export function setClusterToken(token) {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

/** `#/server/<id><rest>` on `node` (default: the current one), prefixed with `/node/<name>` for another node. */
export function serverHref(id, rest = "", node = current) {
  const prefix = node ? `#/node/${encodeURIComponent(node.name)}` : "#";
  return `${prefix}/server/${encodeURIComponent(id)}${rest}`;
}
