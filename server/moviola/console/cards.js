// A video as a card (the library's and the search's): poster, prompt as text, facts, actions.

import { objectUrl, video } from "./api.js";
import { el, when } from "./dom.js";

const urls = new Map();

/** Keep an object URL until the group's cards are replaced (``revokeAll``). */
export function track(group, url) {
  if (!urls.has(group)) urls.set(group, []);
  urls.get(group).push(url);
  return url;
}

export function revokeAll(group) {
  for (const url of urls.get(group) || []) URL.revokeObjectURL(url);
  urls.set(group, []);
}

/** queued, in_progress, completed, failed or cancelled (OpenAI's "failed" with error code "cancelled"). */
export function stateOf(v) {
  return v.status === "failed" && v.error?.code === "cancelled" ? "cancelled" : v.status;
}

export function cardFrame(v, extra = null) {
  const state = stateOf(v);
  const said = el("p", { class: "error", role: "alert" });
  const actions = el("div", { class: "actions" });
  const slot = el("div", { class: "slot" });
  const facts = ` · ${v.moviola_model || v.model} · ${v.size} · ${v.seconds} s · ${when(v.created_at)}`;
  const node = el(
    "li",
    { class: "card", "data-id": v.id },
    el("div", { class: "poster", role: "img", "aria-label": `No poster: ${state.replace("_", " ")}` }),
    el("p", { class: "prompt" }, v.prompt),
    el("p", { class: "meta" }, el("span", { class: `status-${state}` }, state.replace("_", " ")), facts, extra),
    v.error ? el("p", { class: "error" }, v.error.message) : null,
    actions,
    slot,
    said,
  );
  return { node, actions, slot, say: (text) => (said.textContent = text) };
}

/** Put the video's poster (its middle frame, fetched with the key) in its card. */
export async function posterOf(v, node, group) {
  try {
    const src = track(group, await objectUrl(`${video(v.id)}/content?variant=thumbnail`));
    node.querySelector(".poster").replaceWith(el("img", { class: "poster", src, alt: `Poster: ${v.prompt}` }));
  } catch {
    // no poster (expired, or deleted meanwhile): the card says its state
  }
}

/** Play the video in its card, in place of its poster. */
export async function play(v, node, say, group) {
  try {
    const src = track(group, await objectUrl(`${video(v.id)}/content`));
    const player = el("video", { src, controls: true, autoplay: true, loop: true, muted: true, class: "poster", "aria-label": `Video: ${v.prompt}` });
    player.muted = true;
    node.querySelector(".poster").replaceWith(player);
    player.focus();
  } catch (error) {
    say(`Could not play it: ${error.message}`);
  }
}

/** Save the MP4 (fetched with the key, so not a plain link). */
export async function download(v, say) {
  try {
    const href = await objectUrl(`${video(v.id)}/content`);
    const link = el("a", { href, download: `${v.id}.mp4` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(href), 60_000);
  } catch (error) {
    say(`Could not download it: ${error.message}`);
  }
}
