// Create: the form, filled from GET /v1/models; a refusal's field error shown next to the field it names.

import { ApiError, call } from "./api.js";
import { $, el, fill } from "./dom.js";

let models = [];
let ctx;

/** The form field a server error names (OpenAI's ``param``), or null. */
function fieldOf(param) {
  if (!param) return null;
  const name = param.split(/[.[]/)[0];
  return document.querySelector(`#create-form [data-param="${CSS.escape(name)}"]`);
}

function clearErrors() {
  for (const node of document.querySelectorAll("#create-form .error")) node.textContent = "";
  for (const node of document.querySelectorAll("#create-form [aria-invalid]")) node.removeAttribute("aria-invalid");
}

function showError(error) {
  const slot = error instanceof ApiError ? fieldOf(error.param) : null;
  if (!slot) {
    $("create-error").textContent = error.param ? `${error.param}: ${error.message}` : error.message;
    return;
  }
  slot.textContent = error.message;
  const input = $(`f-${slot.dataset.param}`);
  input.setAttribute("aria-invalid", "true");
  input.focus();
}

function chosen() {
  return models.find((m) => m.id === $("f-model").value) || models[0];
}

/** The fields that depend on the model: sizes, length, image, speed profiles. */
function modelChanged() {
  const model = chosen();
  if (!model) return;
  const alias = model.moviola_model && model.moviola_model !== model.id ? ` Runs ${model.moviola_model}.` : "";
  const ready = model.ready === false ? " No worker serves it now: a job waits for one." : "";
  $("d-model").textContent = `${model.description || ""}${alias}${ready}`;
  const sizes = model.sizes || [];
  fill($("f-size"), sizes.length ? sizes.map((s) => el("option", { value: s }, s)) : el("option", { value: "" }, "Default"));
  const seconds = $("f-seconds");
  if (model.default_seconds) seconds.value = String(Math.round(model.default_seconds * 100) / 100);
  if (model.max_seconds) seconds.max = String(model.max_seconds);
  $("d-seconds").textContent = model.max_seconds ? `Up to ${model.max_seconds} s.` : "";
  const image = model.image_input || "unsupported";
  $("image-field").hidden = image === "unsupported";
  $("f-input_reference").required = image === "required";
  $("d-input_reference").textContent = image === "required" ? "Required by this model." : "Optional.";
  $("f-steps").placeholder = model.default_steps ? `${model.default_steps} (the model's)` : "";
  const profiles = model.speed_profiles || ["exact"];
  fill($("f-speed_profile"), profiles.map((p) => el("option", { value: p }, p)));
  const adapters = model.adapters || [];
  $("loras-field").hidden = adapters.length === 0;
  fill($("f-loras"), [el("option", { value: "" }, "None"), ...adapters.map((a) => el("option", { value: a }, a))]);
}

function formData() {
  const form = new FormData();
  const text = (id) => $(id).value.trim();
  form.set("prompt", $("f-prompt").value);
  form.set("model", $("f-model").value);
  for (const name of ["negative_prompt", "size", "seconds", "seed", "steps", "priority", "speed_profile", "preview_every"]) {
    if (text(`f-${name}`)) form.set(name, text(`f-${name}`));
  }
  if (!$("loras-field").hidden && $("f-loras").value) {
    // The openai SDK's form encoding of [{name, scale}], which the server reads.
    form.append("loras[][name]", $("f-loras").value);
    form.append("loras[][scale]", text("f-lora_scale") || "1");
  }
  const file = $("f-input_reference").files[0];
  if (file && !$("image-field").hidden) form.set("input_reference", file, file.name);
  return form;
}

async function submit(event) {
  event.preventDefault();
  clearErrors();
  const button = $("create-submit");
  button.disabled = true;
  try {
    const video = await call("/v1/videos", { method: "POST", form: formData() });
    const watch = await ctx.page("watch");
    watch.watch(video);
    ctx.go("watch");
  } catch (error) {
    showError(error);
  } finally {
    button.disabled = false;
  }
}

async function load() {
  try {
    models = (await call("/v1/models")).data;
  } catch (error) {
    $("create-error").textContent = `Could not list the models: ${error.message}`;
    return;
  }
  const label = (m) => (m.moviola_model && m.moviola_model !== m.id ? `${m.id} (${m.moviola_model})` : m.id);
  fill($("f-model"), models.map((m) => el("option", { value: m.id }, label(m))));
  modelChanged();
}

export async function start(context) {
  ctx = context;
  $("create-form").addEventListener("submit", submit);
  $("f-model").addEventListener("change", modelChanged);
  await load();
  return { shown: () => $("f-prompt").focus(), models: () => models };
}
