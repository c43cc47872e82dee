// Building the page. Every string, the server's or the user's, becomes text (textContent, text
// nodes), never HTML: nothing here parses markup, and the Content-Security-Policy requires Trusted
// Types, so an HTML sink added by mistake throws instead of running a prompt's <script>.

export function $(id) {
  return document.getElementById(id);
}

/** An element: props set attributes ("text" its text, "onX" a listener, "class"), children appended as nodes or text. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = String(value);
    else if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "value" || name === "checked" || name === "selected") node[name] = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

/** Replace a node's children. */
export function fill(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

export function setText(id, text) {
  $(id).textContent = text ?? "";
}

/** "3 s", "2 min 5 s" for a number of seconds. */
export function duration(seconds) {
  if (!Number.isFinite(seconds)) return "–";
  if (seconds < 60) return `${Math.max(0, Math.round(seconds * 10) / 10)} s`;
  const m = Math.floor(seconds / 60);
  return `${m} min ${Math.round(seconds - m * 60)} s`;
}

/** A Unix time (seconds) as a local date and time. */
export function when(unix) {
  return unix ? new Date(unix * 1000).toLocaleString() : "";
}
