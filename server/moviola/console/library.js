// Library: the caller's videos newest first (GET /v1/videos), a page at a time, with posters; play,
// download, remix, extend, delete, "more like this". The state and model filters read pages of the
// listing until a page of matches is found (the listing itself filters on neither).

import { call, video } from "./api.js";
import { cardFrame, download, play, posterOf, revokeAll, stateOf } from "./cards.js";
import { $, el, fill } from "./dom.js";

const PAGE = 12;
const SCANS = 10;
let ctx;
let cursors = [""];
let next = null;

function filters() {
  return { state: $("l-state").value, model: $("l-model").value };
}

function matches(v, { state, model }) {
  return (!state || stateOf(v) === state) && (!model || v.moviola_model === model || v.model === model);
}

/** Up to PAGE matching videos after ``after``, and where the next page starts (null: none). */
async function fetchPage(after) {
  const wanted = filters();
  const filtered = Boolean(wanted.state || wanted.model);
  const found = [];
  let cursor = after;
  for (let scan = 0; scan < SCANS; scan++) {
    const params = new URLSearchParams({ limit: String(filtered ? 100 : PAGE), order: "desc" });
    if (cursor) params.set("after", cursor);
    const page = await call(`/v1/videos?${params}`);
    for (const [i, v] of page.data.entries()) {
      cursor = v.id;
      if (!matches(v, wanted)) continue;
      found.push(v);
      if (found.length === PAGE) return { found, next: i < page.data.length - 1 || page.has_more ? cursor : null };
    }
    if (!page.has_more) return { found, next: null };
  }
  return { found, next: cursor };
}

async function load() {
  $("library-status").textContent = "Loading…";
  try {
    const page = await fetchPage(cursors.at(-1));
    next = page.next;
    revokeAll("library");
    fill($("library-list"), page.found.map(card));
    const first = (cursors.length - 1) * PAGE + 1;
    $("library-status").textContent = page.found.length
      ? `Videos ${first}–${first + page.found.length - 1}${next ? "" : " (the last page)"}`
      : "No videos here yet.";
  } catch (error) {
    $("library-status").textContent = `Could not list the videos: ${error.message}`;
  }
  $("library-newer").disabled = cursors.length <= 1;
  $("library-older").disabled = !next;
}

function card(v) {
  const { node, actions, say, slot } = cardFrame(v);
  const state = stateOf(v);
  const done = v.status === "completed";
  const act = (label, handler, props = {}) =>
    actions.append(el("button", { type: "button", class: "secondary", onclick: handler, ...props }, label));
  if (done) {
    act("Play", () => play(v, node, say, "library"), { "aria-label": `Play: ${v.prompt}` });
    act("Download", () => download(v, say));
    act("Extend", () => inline(slot, "extend", v, say));
    act("More like this", async () => (await ctx.page("search")).like(v));
  }
  if (state !== "queued" && state !== "in_progress") act("Remix", () => inline(slot, "remix", v, say));
  act("Watch", async () => {
    (await ctx.page("watch")).watch(v);
    ctx.go("watch");
  });
  if (state !== "queued" && state !== "in_progress") act("Delete", () => confirmDelete(v, slot, say));
  if (done) posterOf(v, node, "library");
  return node;
}

/** A small form in the card: remix (a new prompt) or extend (a prompt and seconds more). */
function inline(slot, kind, v, say) {
  const id = `${kind}-${v.id}`;
  const prompt = el("input", { id: `${id}-prompt`, required: true, value: kind === "remix" ? v.prompt : "" });
  const secs = el("input", { id: `${id}-seconds`, type: "number", min: "0.1", step: "any", value: v.seconds });
  const form = el(
    "form",
    { "aria-label": kind === "remix" ? "Remix" : "Extend" },
    el("label", { for: `${id}-prompt` }, kind === "remix" ? "New prompt" : "What happens next"),
    prompt,
    kind === "extend" ? [el("label", { for: `${id}-seconds` }, "Seconds more"), secs] : null,
    el("button", { type: "submit" }, kind === "remix" ? "Remix" : "Extend"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const made =
        kind === "remix"
          ? await call(`${video(v.id)}/remix`, { method: "POST", json: { prompt: prompt.value } })
          : await call("/v1/videos/extensions", {
              method: "POST",
              json: { video: { id: v.id }, prompt: prompt.value, seconds: secs.value },
            });
      (await ctx.page("watch")).watch(made);
      ctx.go("watch");
    } catch (error) {
      say(error.param ? `${error.param}: ${error.message}` : error.message);
    }
  });
  fill(slot, form);
  prompt.focus();
}

function confirmDelete(v, slot, say) {
  const yes = el("button", { type: "button" }, "Delete it");
  const no = el("button", { type: "button", class: "secondary", onclick: () => fill(slot) }, "Keep it");
  yes.addEventListener("click", async () => {
    try {
      await call(video(v.id), { method: "DELETE" });
      await load();
      $("library-status").textContent = `Deleted ${v.id}.`;
    } catch (error) {
      say(`Could not delete it: ${error.message}`);
    }
  });
  fill(slot, el("p", { role: "group", "aria-label": "Confirm delete" }, "Delete this video and its files? ", yes, " ", no));
  no.focus();
}

async function models() {
  try {
    const served = (await call("/v1/models")).data.filter((m) => !m.moviola_model || m.moviola_model === m.id);
    fill($("l-model"), el("option", { value: "" }, "All"), served.map((m) => el("option", { value: m.id }, m.id)));
  } catch {
    // the filter keeps "All"
  }
}

export async function start(context) {
  ctx = context;
  const restart = () => {
    cursors = [""];
    load();
  };
  $("l-state").addEventListener("change", restart);
  $("l-model").addEventListener("change", restart);
  $("library-refresh").addEventListener("click", restart);
  $("library-older").addEventListener("click", () => {
    cursors.push(next);
    load();
  });
  $("library-newer").addEventListener("click", () => {
    cursors.pop();
    load();
  });
  await models();
  return { shown: restart };
}
