// The REST face, as the page calls it: the key from sessionStorage in an Authorization header (never
// in a URL, a cookie or a log), OpenAI's error body turned into ApiError, and Server-Sent Events read
// with fetch (EventSource cannot send a header), resumable after any event id.

const KEY = "moviola.key";

export const session = {
  get key() {
    return sessionStorage.getItem(KEY) || "";
  },
  set key(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  },
};

/** An answer that is not 2xx: its status, OpenAI's error message, and the field it names (param). */
export class ApiError extends Error {
  constructor(status, message, param = null) {
    super(message);
    this.status = status;
    this.param = param;
  }
}

const listeners = new Set();
/** Called with every ApiError a call meets (the page signs out on 401). */
export function onError(listener) {
  listeners.add(listener);
}

function headers(extra = {}, key = session.key) {
  const all = new Headers(extra);
  if (key) all.set("authorization", `Bearer ${key}`);
  return all;
}

async function errorOf(response) {
  let body = null;
  try {
    body = (await response.json()).error;
  } catch {
    body = null;
  }
  const message = body?.message || `${response.status} ${response.statusText}`.trim();
  return new ApiError(response.status, message, body?.param ?? null);
}

async function send(path, { method = "GET", json, form, signal, key } = {}) {
  const init = { method, headers: headers({}, key), signal, cache: "no-store" };
  if (json !== undefined) {
    init.headers.set("content-type", "application/json");
    init.body = JSON.stringify(json);
  } else if (form !== undefined) {
    init.body = form;
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    const error = await errorOf(response);
    for (const listener of listeners) listener(error);
    throw error;
  }
  return response;
}

/** A JSON call; ApiError when refused. ``key`` overrides the stored key ("" sends none). */
export async function call(path, options = {}) {
  return (await send(path, options)).json();
}

/** A file as an object URL (the caller revokes it), fetched with the key. */
export async function objectUrl(path, signal) {
  const response = await send(path, { signal });
  return URL.createObjectURL(await response.blob());
}

/** Whether the server answers without a key (no auth file): a keyless call succeeds. */
export async function unauthenticated() {
  const response = await fetch("/v1/models", { cache: "no-store" });
  if (response.status === 401) return false;
  if (!response.ok) throw await errorOf(response);
  return true;
}

/** A job's events after ``after``, as {id, kind, data}; ends when the stream ends (after the terminal event). */
export async function* events(videoId, after, signal) {
  const extra = { accept: "text/event-stream" };
  if (after) extra["last-event-id"] = String(after);
  const response = await fetch(`/v1/videos/${encodeURIComponent(videoId)}/events`, {
    headers: headers(extra),
    signal,
    cache: "no-store",
  });
  if (!response.ok) {
    const error = await errorOf(response);
    for (const listener of listeners) listener(error);
    throw error;
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replaceAll("\r\n", "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = parse(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (event) yield event;
    }
  }
}

function parse(block) {
  let id = 0;
  let kind = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue; // a keep-alive comment
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "id") id = Number(value);
    else if (field === "event") kind = value;
    else if (field === "data") data.push(value);
  }
  return data.length ? { id, kind, data: JSON.parse(data.join("\n")) } : null;
}

export const video = (id) => `/v1/videos/${encodeURIComponent(id)}`;
