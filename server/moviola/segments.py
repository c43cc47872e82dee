"""Long videos: more frames than one model window, made as segments.

A model makes at most ``limits.max_frames`` frames in one run. A longer request is made of
segments: the first from the prompt (and image), each next one conditioned, through the model's
image-to-video path, on a frame ``overlap`` frames before the end of what is made so far; its
first ``overlap`` frames are blended with those, and the rest appended. Models with an image-to-video
path continue their own videos (Wan2.2-TI2V and LTX-Video take an optional image, Wan2.2-I2V needs one);
a text-to-video model whose catalogue entry names a partner (``continue_with``: Wan2.2-T2V-A14B pairs
with Wan2.2-I2V-A14B) makes the first window and hands the rest to the partner when it is served
(``worker/pairing.py``); others are refused naming ``seconds`` and what to serve.

    plan(97, tiny_ti2v)    # [49, 49, 9]: windows of 49 frames, 5 shared at each seam
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from moviola.catalog import ImageInput, ModelSpec
from moviola.errors import InvalidRequest


def continues(spec: ModelSpec) -> bool:
    """Whether ``spec`` continues a video from its frames itself (it has an image-to-video path)."""
    if spec.image_input is ImageInput.REQUIRED:
        return True
    return spec.image_input is ImageInput.OPTIONAL and spec.image_pipeline_class is not None


def continuer(spec: ModelSpec, models: Mapping[str, ModelSpec]) -> ModelSpec | None:
    """The served model that continues ``spec``'s videos past one window: ``spec`` itself where it can,
    else its partner (``continue_with``) where that is served; None: ``spec`` makes one window."""
    if continues(spec):
        return spec
    partner = models.get(spec.continue_with) if spec.continue_with else None
    return partner if partner is not None and continues(partner) else None


def can_segment(spec: ModelSpec, models: Mapping[str, ModelSpec]) -> bool:
    """Whether ``spec`` makes videos longer than one window where ``models`` are served."""
    return continuer(spec, models) is not None


def handed_on(spec: ModelSpec, num_frames: int, extension: bool) -> bool:
    """Whether ``num_frames`` frames on ``spec`` go on past its first window on its partner (``continue_with``)."""
    return num_frames > spec.limits.max_frames and not continues(spec) and not extension


def one_window(spec: ModelSpec) -> str:
    """Why ``spec`` makes one window, and what to serve for longer videos."""
    if spec.continue_with:
        return f"it continues its videos on {spec.continue_with}: serve that model too for longer videos"
    return (
        "it cannot continue a video from its frames; serve a model that can (one with an image-to-video "
        "path, like wan2.2-ti2v-5b or ltx-video) for longer videos"
    )


def overlap(spec: ModelSpec) -> int:
    """Frames two segments share and blend: the conditioning frame and one latent frame's worth after it."""
    return spec.limits.frame_multiple + 1


def plan(total: int, spec: ModelSpec, made: int = 0) -> list[int]:
    """The frames of each segment of a ``total``-frame video, each ``k·n+1`` and at most one window;
    after ``made`` frames that exist already (an extension), every segment continues them."""
    window, k, shared = spec.limits.max_frames, spec.limits.frame_multiple, overlap(spec)
    sizes = []
    if not made:
        sizes.append(min(total, window))
        made = sizes[0]
    while made < total:
        need = total - made + shared
        size = min(window, -(-(need - 1) // k) * k + 1)  # the smallest k·n+1 that covers it
        sizes.append(size)
        made += size - shared
    return sizes


def frames(
    value: int, spec: ModelSpec, fps: int, models: Mapping[str, ModelSpec], field: str = "num_frames"
) -> int:
    if value == 0:
        return spec.defaults.num_frames
    limits = spec.limits
    k = limits.frame_multiple
    if (value - 1) % k:
        lower = (value - 1) // k * k + 1
        raise InvalidRequest(
            field,
            f"must be {k}k+1 for model {spec.id}, which would otherwise round it silently "
            f"(got {value}; nearest valid: {lower} or {lower + k})",
        )
    if value <= limits.max_frames:
        return value
    if not can_segment(spec, models):
        raise InvalidRequest(
            field,
            f"must be at most {limits.max_frames} for model {spec.id} (got {value}): it makes one window; "
            + one_window(spec),
        )
    longest = math.floor(limits.max_seconds * fps / k) * k + 1
    if value > longest:
        raise InvalidRequest(
            field,
            f"must be at most {longest} ({limits.max_seconds:g} s at {fps} fps, --max-seconds) for model "
            f"{spec.id} (got {value})",
        )
    return value


def frames_for_seconds(seconds: str, fps: int, spec: ModelSpec, models: Mapping[str, ModelSpec]) -> int:
    """The frame count nearest ``seconds`` at ``fps`` (``k·n + 1``); past one window a long video
    (``segments.py``) where the model makes one, else ``InvalidRequest`` on ``seconds``."""
    try:
        value = float(seconds)
    except ValueError:
        raise InvalidRequest("seconds", f"must be a number of seconds (got {seconds[:32]!r})") from None
    fps = fps or spec.defaults.fps
    window = (spec.limits.max_frames - 1) / fps
    longer = can_segment(spec, models)
    longest = spec.limits.max_seconds if longer else window
    if not (0 < value <= max(longest, window)):  # NaN fails too
        more = "" if longer else f" (one window: {one_window(spec)})"
        raise InvalidRequest(
            "seconds",
            f"must be above 0 and at most {max(longest, window):g} for model {spec.id} (got {seconds}){more}",
        )
    k = spec.limits.frame_multiple
    return max(1, round(value * fps / k)) * k + 1
