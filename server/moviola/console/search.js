// Search: the caller's videos by words (what they show, or their prompts), or "more like this" video
// (POST /v1/videos/search); each hit as a card like the library's.

import { call, video } from "./api.js";
import { cardFrame, play, posterOf, revokeAll } from "./cards.js";
import { $, el, fill } from "./dom.js";

const TOP = 12;
let ctx;

function clearErrors() {
  $("e-s-text").textContent = "";
  $("search-error").textContent = "";
  $("s-text").removeAttribute("aria-invalid");
}

async function run(query, what) {
  clearErrors();
  $("search-status").textContent = `Searching for ${what}…`;
  try {
    const found = await call("/v1/videos/search", { method: "POST", json: { ...query, top_k: TOP } });
    const shown = await Promise.all(
      found.data.map((hit) =>
        call(video(hit.video_id))
          .then((v) => [hit, v])
          .catch(() => null),
      ),
    );
    revokeAll("search");
    const cards = shown.filter(Boolean).map(([hit, v]) => card(hit, v));
    fill($("search-list"), cards);
    $("search-status").textContent = `${cards.length} found for ${what} (${found.embedding_model}).`;
  } catch (error) {
    $("search-status").textContent = "";
    if (error.param === "text") {
      $("e-s-text").textContent = error.message;
      $("s-text").setAttribute("aria-invalid", "true");
    } else {
      $("search-error").textContent = error.message;
    }
  }
}

function card(hit, v) {
  const { node, actions, say } = cardFrame(v, ` · score ${hit.score.toFixed(3)}, by its ${hit.matched}`);
  const act = (label, handler) => actions.append(el("button", { type: "button", class: "secondary", onclick: handler }, label));
  if (v.status === "completed") {
    act("Play", () => play(v, node, say, "search"));
    act("More like this", () => like(v));
    posterOf(v, node, "search");
  }
  act("Watch", async () => {
    (await ctx.page("watch")).watch(v);
    ctx.go("watch");
  });
  return node;
}

/** Videos like ``v`` (one of the caller's). */
export async function like(v) {
  ctx.go("search");
  $("s-text").value = "";
  await run({ video_id: v.id }, `videos like “${v.prompt}”`);
}

export async function start(context) {
  ctx = context;
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("s-text").value.trim();
    run({ text }, `“${text}”`);
  });
  return { like, shown: () => $("s-text").focus() };
}
