"""The model catalogue: which models a deployment can serve, their defaults and limits.

The catalogue is a TOML file (``catalog.toml`` beside this module; an operator's own
with ``--catalog PATH``). A ``ModelSpec`` is everything the gateway needs to validate
a request without loading the model; the worker uses ``source`` to load it.
"""

from __future__ import annotations

import enum
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

BUILTIN_PREFIX = "builtin:"
CATALOG_PATH = Path(__file__).with_name("catalog.toml")


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
    #: How far an edit that names no strength strays from its video (``moviola.editing``): the share of
    #: the denoising steps run. Models whose schedules stay noisy longer want less for the same effect.
    edit_strength: float = 0.7

    def __post_init__(self) -> None:
        if not 0 < self.edit_strength <= 1:
            raise ValueError(
                f"defaults.edit_strength must be greater than 0 and at most 1, got {self.edit_strength}"
            )


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
    #: Longest video, in seconds, made as segments past one window (``segments.py``); ``--max-seconds``.
    max_seconds: float = 20.0


#: How a worker keeps a model on its card (``moviola.pipelines.memory``), most resident first.
MEMORY_PLANS = ("resident", "encoder_offload", "model_offload", "expert_swap", "group_offload")
#: ``--quantize`` and a memory plan's ``quantize``: how the transformers' weights are stored
#: (``moviola.pipelines.quantize``).
QUANTIZATIONS = ("none", "int8", "fp8", "fp8-dynamic")
#: How a job trades exactness for speed (``moviola.pipelines.speed``): the pipeline's numerics, a step cache,
#: or the model's step-distilled adapter (``turbo`` in its entry).
SPEED_PROFILES = ("exact", "fast", "turbo")
#: The share of a card a plan's expected peak may take (the CUDA context, fragmentation, other processes).
CARD_HEADROOM = 0.95


@dataclass(frozen=True)
class MemoryPlan:
    name: str
    #: GiB of accelerator memory the plan is expected to reach at the model's largest preset; 0: unknown.
    peak_gib: float = 0.0
    #: How the transformers' weights are stored under this plan (``QUANTIZATIONS``).
    quantize: str = "none"

    def __post_init__(self) -> None:
        if self.name not in MEMORY_PLANS:
            raise ValueError(f"memory plan {self.name!r} is not one of {', '.join(MEMORY_PLANS)}")
        if self.quantize not in QUANTIZATIONS:
            raise ValueError(
                f"memory plan quantize {self.quantize!r} is not one of {', '.join(QUANTIZATIONS)}"
            )


@dataclass(frozen=True)
class MemoryOptions:
    """How the model fits its card: the plans it has (fastest first) and diffusers' VAE savers."""

    #: Older catalogues: the same as ``plans = [{ name = "model_offload" }]``.
    model_cpu_offload: bool = False
    #: Decode every job tiled; or only jobs of at least ``vae_tiling_pixels`` pixels per frame (0: none).
    vae_tiling: bool = False
    vae_tiling_pixels: int = 0
    vae_slicing: bool = False
    plans: tuple[MemoryPlan, ...] = ()

    def candidates(self) -> tuple[MemoryPlan, ...]:
        if self.plans:
            return self.plans
        return (MemoryPlan("model_offload" if self.model_cpu_offload else "resident"),)

    def choose(self, card_gib: float | None, requested: str = "auto", quantize: str = "auto") -> MemoryPlan:
        """The plan named, else the first whose peak fits a card of ``card_gib`` (None: no accelerator).

        ``quantize`` other than "auto" keeps only the plans of that quantization (a plan the catalogue does
        not list with it is made, without an expected peak). Raises ``ValueError`` saying what the smallest
        plan needs when none fits.
        """
        fixed = quantize if quantize != "auto" else None
        plans = tuple(p for p in self.candidates() if fixed is None or p.quantize == fixed)
        if requested != "auto":
            named = [plan for plan in plans if plan.name == requested]
            return named[0] if named else MemoryPlan(requested, quantize=fixed or "none")
        if card_gib is None:
            return MemoryPlan("resident", quantize=fixed or "none")
        if not plans:
            return MemoryPlan(self.candidates()[0].name, quantize=fixed or "none")
        fits = [plan for plan in plans if plan.peak_gib <= card_gib * CARD_HEADROOM]
        if not fits:
            smallest = min(plans, key=lambda plan: plan.peak_gib)
            raise ValueError(
                f"no memory plan fits this card ({card_gib:.1f} GiB): the smallest, {smallest.name} "
                f"(quantize {smallest.quantize}), is expected to reach {smallest.peak_gib:g} GiB"
            )
        return fits[0]

    def tiles(self, width: int, height: int) -> bool:
        """Whether a job of this size decodes its video tile by tile."""
        return self.vae_tiling or 0 < self.vae_tiling_pixels <= width * height


#: ``TurboProfile.sampler``: the pipeline's own scheduler (with the profile's shift), or flow-matching Euler.
TURBO_SAMPLERS = ("", "euler")


@dataclass(frozen=True)
class TurboProfile:
    """The step-distilled profile of a model: its distillation adapter, steps, and scheduler settings."""

    #: The adapter (``moviola.adapters``) holding the distillation, applied to every transformer.
    adapter: str
    #: Steps it runs by default, and the most a request may ask for.
    steps: int = 4
    max_steps: int = 8
    #: The flow shift it was trained with; None: the scheduler's own.
    shift: float | None = None
    sampler: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.steps <= self.max_steps:
            raise ValueError(f"turbo: steps must be within 1..max_steps, got {self.steps}")
        if self.sampler not in TURBO_SAMPLERS:
            raise ValueError(f"turbo: sampler must be '' or euler, got {self.sampler!r}")


@dataclass(frozen=True)
class ModelSpec:
    id: str
    description: str
    pipeline_class: str
    #: A hub id, a local folder, or ``builtin:NAME`` for a tiny model built on first use.
    source: str
    defaults: ModelDefaults
    limits: ModelLimits = field(default_factory=ModelLimits)
    #: The diffusers class used for requests with an image, sharing the components (``from_pipe``).
    image_pipeline_class: str | None = None
    #: The diffusers class that edits a video (video-to-video with a new prompt, ``from_pipe``); None: it cannot.
    video_pipeline_class: str | None = None
    #: A name requests may use instead of the exact id.
    family: str = ""
    #: Model that takes a text-to-video request this one cannot start in time (when the request allows it).
    fallback: str | None = None
    #: The image-to-video model that continues this one's videos past one window when it is served too
    #: (``segments.continuer``); "": none (this model continues its own, or makes one window).
    continue_with: str = ""
    license: str = ""
    #: Listed and served only when the operator asks for opt-in models (licence restrictions).
    opt_in: bool = False
    random_weights: bool = False
    boundary_ratio: float | None = None
    image_input: ImageInput = ImageInput.UNSUPPORTED
    dtype: str = "auto"
    device: str = "auto"
    memory: MemoryOptions = field(default_factory=MemoryOptions)
    #: Named sizes, for example "480p": (832, 480).
    presets: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: The fast profile's First Block Cache threshold (higher: more steps cached, further from exact).
    fast_threshold: float = 0.1
    #: The turbo profile (a step-distilled adapter); None: the model has none.
    turbo: TurboProfile | None = None
    #: More names requests may use for it (``sora-2``); the operator's ``--model-alias`` comes first.
    aliases: tuple[str, ...] = ()
    #: Sizes callers name (``"1280x720"``, Sora's) and the size this model makes for each; sizes not
    #: listed map by ``sizes.nearest``.
    size_map: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def mixture_of_experts(self) -> bool:
        return self.boundary_ratio is not None

    @property
    def default_edit_strength(self) -> float | None:
        """An edit's strength when it names none; None where the model cannot edit."""
        return self.defaults.edit_strength if self.video_pipeline_class else None


def _spec(entry: dict[str, Any]) -> ModelSpec:
    entry = dict(entry)
    known = {f.name for f in fields(ModelSpec)} | {"pipeline", "image_pipeline", "video_pipeline"}
    unknown = set(entry) - known
    if unknown:
        raise ValueError(f"model {entry.get('id')!r}: unknown catalogue fields {sorted(unknown)}")
    try:
        entry["pipeline_class"] = entry.pop("pipeline")
        entry["image_pipeline_class"] = entry.pop("image_pipeline", None)
        entry["video_pipeline_class"] = entry.pop("video_pipeline", None)
        entry["defaults"] = ModelDefaults(**entry["defaults"])
        entry["limits"] = ModelLimits(**entry.get("limits", {}))
        memory = dict(entry.get("memory", {}))
        memory["plans"] = tuple(MemoryPlan(**plan) for plan in memory.get("plans", ()))
        entry["memory"] = MemoryOptions(**memory)
        entry["image_input"] = ImageInput(entry.get("image_input", "unsupported"))
        entry["presets"] = {name: (int(w), int(h)) for name, (w, h) in entry.get("presets", {}).items()}
        entry["size_map"] = {size: (int(w), int(h)) for size, (w, h) in entry.get("size_map", {}).items()}
        entry["aliases"] = tuple(entry.get("aliases", ()))
        if "turbo" in entry:
            entry["turbo"] = TurboProfile(**entry["turbo"])
        entry.setdefault("family", entry["id"])
        return ModelSpec(**entry)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"model {entry.get('id')!r}: {exc}") from exc


def _continues_in(spec: ModelSpec, catalog: dict[str, ModelSpec]) -> bool:
    """Whether ``spec``'s partner is in ``catalog``, takes an image and cuts frames as ``spec`` does."""
    partner = catalog.get(spec.continue_with)
    return (
        partner is not None
        and partner.image_input is not ImageInput.UNSUPPORTED
        and partner.limits.frame_multiple == spec.limits.frame_multiple
    )


def load_catalog(path: Path = CATALOG_PATH) -> dict[str, ModelSpec]:
    """Read a catalogue file; raises ``ValueError`` naming the entry at fault."""
    with path.open("rb") as file:
        data = tomllib.load(file)
    specs = [_spec(entry) for entry in data.get("model", [])]
    catalog = {spec.id: spec for spec in specs}
    if len(catalog) != len(specs):
        raise ValueError(f"{path}: duplicate model ids")
    for spec in specs:
        if spec.fallback is not None and spec.fallback not in catalog:
            raise ValueError(f"model {spec.id!r}: fallback {spec.fallback!r} is not in the catalogue")
        if spec.continue_with and not _continues_in(spec, catalog):
            raise ValueError(
                f"model {spec.id!r}: continue_with {spec.continue_with!r} must be an image-to-video model "
                "of the catalogue with the same frame multiple"
            )
    return catalog


BUILTIN_MODELS: dict[str, ModelSpec] = load_catalog()


def catalog_of(path: Path | None) -> dict[str, ModelSpec]:
    """The catalogue at ``path`` (an operator's ``--catalog``), else the one shipped with Moviola."""
    return load_catalog(path) if path else BUILTIN_MODELS


DEFAULT_MODEL = "tiny-wan2.2-t2v"
TINY_WAN22_T2V = BUILTIN_MODELS[DEFAULT_MODEL]


def resolve(
    model_id: str, model_path: str | None = None, catalog: dict[str, ModelSpec] | None = None
) -> ModelSpec:
    """The spec of a known model, with its source replaced by ``model_path`` when given.

    >>> resolve("wan2.2-t2v-a14b", "/weights/Wan2.2-T2V-A14B-Diffusers").source
    '/weights/Wan2.2-T2V-A14B-Diffusers'
    """
    catalog = BUILTIN_MODELS if catalog is None else catalog
    try:
        spec = catalog[model_id]
    except KeyError:
        known = ", ".join(sorted(catalog))
        raise ValueError(f"unknown model {model_id!r}; known models: {known}") from None
    if model_path:
        spec = replace(spec, source=model_path)
    return spec
