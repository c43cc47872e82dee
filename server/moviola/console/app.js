// The console's entry: sign-in, the pages (#create, #watch, #library, #search, #operator) and who is signed in.

import { ApiError, call, onError, session, unauthenticated } from "./api.js";
import { $, el, fill } from "./dom.js";

const PAGES = ["create", "watch", "library", "search", "operator"];
/** Each page's module, loaded on first visit: the first paint needs none of them. */
const MODULES = {
  create: () => import("./create.js"),
  watch: () => import("./watch.js"),
  library: () => import("./library.js"),
  search: () => import("./search.js"),
  operator: () => import("./operator.js"),
};
const state = { open: false, admin: false, shown: "" };
const started = new Map();

async function page(name) {
  if (!started.has(name)) started.set(name, MODULES[name]().then((m) => m.start(context)));
  return started.get(name);
}

/** What the page modules share. */
export const context = {
  go(name) {
    if (location.hash !== `#${name}`) location.hash = name;
    else show();
  },
  page,
};

async function show() {
  let name = location.hash.slice(1);
  if (!PAGES.includes(name) || (name === "operator" && !state.admin)) name = "create";
  for (const other of PAGES) $(`page-${other}`).hidden = other !== name;
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.page === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const previous = state.shown;
  state.shown = name;
  const module = await page(name);
  if (previous) $("main").focus();
  module?.shown?.();
  for (const other of PAGES) if (other !== name && started.has(other)) (await started.get(other))?.hidden?.();
}

function signedOut(message) {
  session.key = "";
  $("nav").hidden = true;
  for (const name of PAGES) $(`page-${name}`).hidden = true;
  fill($("who"));
  $("page-signin").hidden = false;
  $("signin-error").textContent = message || "";
  $("signin-key").value = "";
  $("signin-key").setAttribute("aria-invalid", message ? "true" : "false");
  $("signin-key").focus();
}

async function signedIn() {
  $("page-signin").hidden = true;
  $("nav").hidden = false;
  state.admin = await isAdmin();
  $("nav-operator").hidden = !state.admin;
  const who = state.open
    ? el("span", { class: "notice warn", id: "unauthenticated" }, "Unauthenticated server: anyone who reaches it may use it.")
    : el("span", { id: "signed-in" }, state.admin ? "Signed in (admin key)" : "Signed in");
  const out = state.open ? null : el("button", { type: "button", class: "secondary", id: "sign-out", onclick: signOut }, "Sign out");
  fill($("who"), who, out);
  if (sessionStorage.getItem("moviola.watch")) page("watch"); // a reload resumes the stream watched
  await show();
}

function signOut() {
  sessionStorage.clear(); // the key, and the job this tab watched
  location.hash = "";
  location.reload();
}

/** Whether this key may see the operator view: the admin routes answer it (403 for a tenant's key). */
async function isAdmin() {
  try {
    await call("/v1/admin/fleet");
    return true;
  } catch (error) {
    if (error instanceof ApiError && (error.status === 403 || error.status === 404)) return false;
    throw error;
  }
}

async function signIn(event) {
  event.preventDefault();
  const key = $("signin-key").value.trim();
  if (!key) return signedOut("Paste an API key first.");
  try {
    await call("/v1/models", { key });
  } catch (error) {
    if (error.status === 401) return signedOut(`This key was refused (401): ${error.message}`);
    return signedOut(`The server did not answer: ${error.message}`);
  }
  session.key = key;
  await signedIn();
}

async function main() {
  $("signin-form").addEventListener("submit", signIn);
  window.addEventListener("hashchange", () => state.open || session.key ? show() : undefined);
  onError((error) => {
    if (error.status === 401 && !state.open && session.key) signedOut(`Your key was refused (401): ${error.message}`);
  });
  try {
    state.open = await unauthenticated();
  } catch (error) {
    $("loading").textContent = `The server did not answer: ${error.message}`;
    return;
  }
  $("loading").hidden = true;
  if (state.open || session.key) {
    try {
      if (!state.open) await call("/v1/models");
      await signedIn();
      return;
    } catch (error) {
      if (error.status !== 401) throw error;
      return; // onError signed out, saying why
    }
  }
  signedOut("");
}

main().finally(() => performance.mark("moviola-ready")); // what a person can use: the form or the page
