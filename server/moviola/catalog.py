"""The models Moviola knows: what each needs, its defaults and its limits.

A ``ModelSpec`` is everything the gateway needs to validate a request for a
model without loading it; the worker uses ``source`` to load it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

BUILTIN_PREFIX = "builtin:"


class ImageInput(enum.Enum):
    UNSUPPORTED = "unsupported"
    REQUIRED = "required"
    OPTIONAL = "optional"


@dataclass(frozen=True)
class ModelDefaults:
    width: int
    height: int
    num_frames: int
    fps: int
    num_inference_steps: int
    guidance_scale: float
    guidance_scale_2: float | None = None


@dataclass(frozen=True)
class ModelLimits:
    size_multiple: int = 16
    min_size: int = 16
    max_size: int = 1280
    frame_multiple: int = 4
    max_frames: int = 121
    max_steps: int = 100
    max_guidance_scale: float = 20.0
    max_prompt_chars: int = 2000
    max_image_bytes: int = 10 * 1024 * 1024
    max_fps: int = 60


@dataclass(frozen=True)
class ModelSpec:
    id: str
    description: str
    pipeline_class: str
    #: A hub id, a local folder, or ``builtin:NAME`` for a tiny model built on first use.
    source: str
    defaults: ModelDefaults
    limits: ModelLimits = field(default_factory=ModelLimits)
    random_weights: bool = False
    boundary_ratio: float | None = None
    image_input: ImageInput = ImageInput.UNSUPPORTED

    @property
    def mixture_of_experts(self) -> bool:
        return self.boundary_ratio is not None


TINY_WAN22_T2V = ModelSpec(
    id="tiny-wan2.2-t2v",
    description=(
        "Wan2.2-T2V-A14B architecture at toy size with random weights: two experts, real pipeline, "
        "output is noise. For trying Moviola without weights."
    ),
    pipeline_class="WanPipeline",
    source=f"{BUILTIN_PREFIX}tiny-wan2.2-t2v",
    defaults=ModelDefaults(
        width=128,
        height=128,
        num_frames=17,
        fps=16,
        num_inference_steps=8,
        guidance_scale=5.0,
        guidance_scale_2=4.0,
    ),
    limits=ModelLimits(max_size=512, max_frames=49, max_steps=50),
    random_weights=True,
    boundary_ratio=0.875,
)

WAN22_T2V_A14B = ModelSpec(
    id="wan2.2-t2v-a14b",
    description=(
        "Wan2.2 text-to-video, 27B mixture of experts (14B active): a high-noise expert for layout and motion, "
        "a low-noise expert for detail. Apache-2.0."
    ),
    pipeline_class="WanPipeline",
    source="Wan-AI/Wan2.2-T2V-A14B-Diffusers",
    defaults=ModelDefaults(
        width=832,
        height=480,
        num_frames=81,
        fps=16,
        num_inference_steps=40,
        guidance_scale=4.0,
        guidance_scale_2=3.0,
    ),
    limits=ModelLimits(max_size=1280, max_frames=121, max_steps=100),
    boundary_ratio=0.875,
)

BUILTIN_MODELS: dict[str, ModelSpec] = {spec.id: spec for spec in (TINY_WAN22_T2V, WAN22_T2V_A14B)}
DEFAULT_MODEL = TINY_WAN22_T2V.id


def resolve(model_id: str, model_path: str | None = None) -> ModelSpec:
    """The spec of a known model, with its source replaced by ``model_path`` when given.

    >>> resolve("wan2.2-t2v-a14b", "/weights/Wan2.2-T2V-A14B-Diffusers").source
    '/weights/Wan2.2-T2V-A14B-Diffusers'
    """
    try:
        spec = BUILTIN_MODELS[model_id]
    except KeyError:
        known = ", ".join(sorted(BUILTIN_MODELS))
        raise ValueError(f"unknown model {model_id!r}; known models: {known}") from None
    if model_path:
        spec = replace(spec, source=model_path)
    return spec
