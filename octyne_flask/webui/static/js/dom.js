// Building DOM nodes without ever parsing markup: every piece of text goes in
// through text nodes, so names of files, users and console lines can't inject HTML.

/**
 * Create an element. `props` keys: `class`, `text`, `on<event>` handlers,
 * `dataset`, `style` (object), boolean/string attributes; everything else
 * becomes an attribute via setAttribute (never innerHTML).
 */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  applyProps(element, props);
  append(element, children);
  return element;
}

function applyProps(element, props) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") element.className = value;
    else if (key === "text") element.textContent = String(value);
    else if (key === "dataset") Object.assign(element.dataset, value);
    else if (key === "style") Object.assign(element.style, value);
    else if (key.startsWith("on") && typeof value === "function") element.addEventListener(key.slice(2), value);
    else if (key === "value" || key === "checked" || key === "disabled") element[key] = value;
    else element.setAttribute(key, value === true ? "" : String(value));
  }
}

/** Append children: nodes as they are, strings and numbers as text, arrays flattened. */
function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** Remove every child, then append the new ones. */
export function replaceChildren(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

/** An SVG element (sparklines); attributes only, no markup. */
export function svg(tag, attributes = {}) {
  const element = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  return element;
}

/** Start downloading `href` as `filename` (a link clicked for the user: no page change). */
export function startDownload(href, filename) {
  const link = h("a", { href, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
}

/** A short message that disappears after a few seconds (announced to screen readers). */
export function toast(message, kind = "info") {
  const area = document.getElementById("toasts");
  const item = h("div", { class: `toast ${kind}`, text: message });
  area.append(item);
  setTimeout(() => item.remove(), kind === "error" ? 8000 : 4000);
}
