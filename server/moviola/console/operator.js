// The operator's view (admin keys): each model's workers and queues, dead letters with requeue, the
// latest failures, each tenant's limits and use. Refreshed every few seconds while shown and visible.

import { call } from "./api.js";
import { $, el, fill, when } from "./dom.js";

const EVERY_MS = 5000;
let timer = null;

const cell = (...content) => el("td", {}, ...content);
const rows = (id, items, row, empty) =>
  fill($(id).tBodies[0], items.length ? items.map(row) : el("tr", {}, el("td", { colspan: "6", class: "muted" }, empty)));

function limit(value, unit = "") {
  return value ? `${value}${unit}` : "none";
}

async function requeue(letter) {
  try {
    const made = await call(`/v1/admin/dead_letters/${encodeURIComponent(letter.video_id)}/requeue`, { method: "POST" });
    $("operator-done").textContent = `Requeued ${letter.video_id} as ${made.id}.`;  // refreshes leave it
    await refresh();
  } catch (error) {
    $("operator-error").textContent = `Could not requeue ${letter.video_id}: ${error.message}`;
  }
}

function render(fleet, letters) {
  rows("op-models", fleet.models, (m) =>
    el("tr", { "data-model": m.model },
      el("th", { scope: "row" }, m.model),
      cell(m.workers.length ? "yes" : "no"),
      cell(m.workers.length ? `${m.workers.length}: ${m.workers.join(", ")}` : "none"),
      cell(m.busy.length ? m.busy.map((b) => `${b.worker}: ${b.video_id}`).join(", ") : "–"),
      cell(String(m.queued.interactive)),
      cell(String(m.queued.batch)),
    ), "No model served.");
  rows("op-dead", letters.data, (d) =>
    el("tr", {},
      cell(d.video_id), cell(d.model), cell(String(d.attempts)), cell(d.error), cell(when(d.failed_at)),
      cell(el("button", { type: "button", class: "secondary", onclick: () => requeue(d), "aria-label": `Requeue ${d.video_id}` }, "Requeue")),
    ), "No dead letters.");
  rows("op-failures", fleet.failures, (f) =>
    el("tr", {}, cell(f.video_id), cell(f.tenant || "–"), cell(f.model), cell(f.code), cell(f.message), cell(when(f.failed_at))),
    "No failures lately.");
  rows("op-tenants", fleet.tenants, (t) =>
    el("tr", { "data-tenant": t.tenant },
      el("th", { scope: "row" }, t.tenant || "(everyone: no auth file)"),
      cell(t.admin ? "yes" : "no"),
      cell(`${t.queued + t.running} (${t.queued} queued, ${t.running} running)`),
      cell(limit(t.limits.in_flight)),
      cell(t.limits.rate ? `${t.limits.rate}/s, burst ${t.limits.burst}` : "none"),
      cell(String(t.limits.weight)),
    ), "No tenants.");
}

async function refresh() {
  try {
    const [fleet, letters] = await Promise.all([call("/v1/admin/fleet"), call("/v1/admin/dead_letters")]);
    render(fleet, letters);
    $("operator-error").textContent = "";
    $("operator-updated").textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every ${EVERY_MS / 1000} s.`;
  } catch (error) {
    $("operator-error").textContent = `Could not refresh: ${error.message}`;
  }
}

function shown() {
  hidden();
  refresh();
  timer = setInterval(() => document.visibilityState === "visible" && refresh(), EVERY_MS);
}

function hidden() {
  clearInterval(timer);
  timer = null;
}

export function start() {
  return { shown, hidden };
}
