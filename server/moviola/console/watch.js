// Watch: one job's events (GET /v1/videos/{id}/events), folded into what a person wants to see. The
// fold and the last event id are kept in sessionStorage after every event, so that a reload shows
// the same and resumes the stream after that id (Last-Event-ID): no event twice, none lost.

import { call, events, objectUrl, video } from "./api.js";
import { $, duration, el, fill, setText } from "./dom.js";

const STORE = "moviola.watch";
const PREVIEWS = 8;
const PHASES = {
  PHASE_TEXT_ENCODING: "Encoding the prompt",
  PHASE_DENOISING: "Denoising",
  PHASE_VAE_DECODING: "Decoding frames (VAE)",
  PHASE_VIDEO_ENCODING: "Encoding the MP4",
  PHASE_STORING: "Storing",
};
const EXPERTS = {
  EXPERT_SINGLE: "single transformer",
  EXPERT_HIGH_NOISE: "high-noise expert (layout, motion)",
  EXPERT_LOW_NOISE: "low-noise expert (detail)",
};

let state = null;
let controller = null;
let shownLog = 0;
let player = null;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function fresh(job) {
  return { job: { id: job.id, prompt: job.prompt, model: job.model }, last: 0, status: job.status, log: [], previews: [] };
}

function save() {
  try {
    sessionStorage.setItem(STORE, JSON.stringify(state));
  } catch {
    state.previews = state.previews.slice(-1); // over the tab's quota: keep the newest preview only
    sessionStorage.setItem(STORE, JSON.stringify(state));
  }
}

const seconds = (text) => (text ? Number.parseFloat(text) : Number.NaN);

/** The state after one event; an event at or before the last one is ignored. */
function apply(event) {
  if (event.id <= state.last) return;
  state.last = event.id;
  const data = event.data[camel(event.kind)] || {};
  let said = event.kind;
  switch (event.kind) {
    case "queued":
      state.status = "queued";
      state.queue = data.position ?? 0;
      said = `queued at position ${state.queue}`;
      break;
    case "started":
      Object.assign(state, { status: "in progress", queue: null, attempt: data.attempt || 1, worker: data.worker });
      said = `started on ${data.worker}, attempt ${state.attempt}`;
      if (state.attempt > 1) said += " (the worker before was lost; it runs again)";
      break;
    case "phase_changed":
      state.phase = data.phase;
      said = PHASES[data.phase] || data.phase;
      break;
    case "progress":
      Object.assign(state, { phase: "PHASE_DENOISING", step: data.step, total: data.totalSteps, expert: data.expert });
      Object.assign(state, { remaining: seconds(data.remaining), segment: data.segment, segments: data.totalSegments });
      said = `step ${data.step} of ${data.totalSteps}`;
      if (data.preview?.image) {
        state.previews = [...state.previews, `data:${data.preview.mimeType};base64,${data.preview.image}`].slice(-PREVIEWS);
        said += ", preview";
      }
      break;
    case "completed":
      Object.assign(state, { status: "completed", done: true, remaining: 0 });
      break;
    case "failed":
      Object.assign(state, { status: "failed", done: true, error: `${data.code}: ${data.message}` });
      break;
    case "cancelled":
      Object.assign(state, { status: "cancelled", done: true, error: `cancelled: ${data.reason}` });
      break;
  }
  state.log.push([event.id, said]);
}

const camel = (kind) => kind.replace(/_(\w)/g, (_, c) => c.toUpperCase());

function render() {
  $("watch-empty").hidden = Boolean(state);
  $("watch-job").hidden = !state;
  if (!state) return;
  setText("watch-prompt", state.job.prompt);
  setText("watch-status", `${state.status} · ${state.job.model} · ${state.job.id}`);
  setText("watch-queue", state.queue ? String(state.queue) : "–");
  setText("watch-phase", PHASES[state.phase] || "–");
  setText("watch-expert", EXPERTS[state.expert] || "–");
  const denoising = state.phase === "PHASE_DENOISING" && !state.done;
  setText("watch-remaining", denoising ? `${duration(state.remaining)} of denoising` : "–");
  setText("watch-attempt", state.attempt ? `${state.attempt}${state.worker ? ` on ${state.worker}` : ""}` : "–");
  const bar = $("watch-steps");
  bar.max = state.total || 1;
  bar.value = state.step || 0;
  const segment = state.segments > 1 ? `, segment ${state.segment} of ${state.segments}` : "";
  setText("watch-step-text", state.total ? `step ${state.step} of ${state.total}${segment}` : "");
  const shown = $("watch-previews");
  if (shown.childElementCount !== state.previews.length || shown.lastChild?.src !== state.previews.at(-1)) {
    fill(shown, state.previews.map((src, i) => el("img", { src, alt: `Preview ${i + 1}`, class: "preview" })));
  }
  setText("watch-error", state.error || "");
  $("watch-cancel").disabled = Boolean(state.done);
  const log = $("watch-log");
  if (shownLog > state.log.length) fill(log);
  for (const [id, said] of state.log.slice(log.childElementCount)) log.append(el("li", { "data-seq": id }, `#${id} ${said}`));
  shownLog = state.log.length;
}

async function showVideo() {
  const slot = $("watch-result");
  if (state.status !== "completed" || slot.dataset.job === state.job.id) return;
  slot.dataset.job = state.job.id;
  try {
    if (player) URL.revokeObjectURL(player);
    player = await objectUrl(`${video(state.job.id)}/content`);
    fill(slot, el("video", { id: "watch-video", src: player, controls: true, loop: true, autoplay: true, muted: true, "aria-label": "The video" }));
    $("watch-video").muted = true;
  } catch (error) {
    fill(slot, el("p", { class: "error" }, `Could not load the video: ${error.message}`));
  }
}

async function follow() {
  controller?.abort();
  const mine = new AbortController();
  controller = mine;
  const id = state.job.id;
  while (state?.job.id === id && !state.done && !mine.signal.aborted) {
    try {
      for await (const event of events(id, state.last, mine.signal)) {
        apply(event);
        save();
        render();
      }
    } catch (error) {
      if (mine.signal.aborted) return;
      if ([401, 403, 404].includes(error.status)) {
        Object.assign(state, { done: true, error: error.message });
        save();
        render();
        return;
      }
    }
    if (!state.done) await sleep(1000); // the stream broke off (a gateway went away): resume after the last event
  }
  if (state?.job.id === id) await showVideo();
}

/** Watch ``job`` (a video object) from its first event. */
export function watch(job) {
  controller?.abort();
  state = fresh(job);
  fill($("watch-result"));
  delete $("watch-result").dataset.job;
  shownLog = 0;
  fill($("watch-log"));
  save();
  render();
  follow();
}

async function cancel() {
  try {
    await call(`${video(state.job.id)}/cancel`, { method: "POST" });
  } catch (error) {
    setText("watch-error", error.message);
  }
}

export function start() {
  $("watch-cancel").addEventListener("click", cancel);
  try {
    state = JSON.parse(sessionStorage.getItem(STORE) || "null");
  } catch {
    state = null;
  }
  render();
  if (state) follow();
  return { watch };
}
