"""Resolve a model spec's source and load its pipeline."""

from __future__ import annotations

import logging
from collections.abc import Callable

from moviola.adapters import registered
from moviola.catalog import BUILTIN_PREFIX, ModelSpec
from moviola.pipelines.base import VideoPipeline
from moviola.settings import Settings

log = logging.getLogger(__name__)

#: What a server calls to get its pipeline; tests pass their own (a pipeline per failure mode).
PipelineLoader = Callable[[ModelSpec, Settings], VideoPipeline]


def load_pipeline(spec: ModelSpec, settings: Settings) -> VideoPipeline:
    """Load ``spec``: a ``builtin:`` tiny model is built into the cache folder on first use; with
    ``gpus`` > 1, on every rank of a multi-GPU worker (``parallel.launch``)."""
    if settings.models.gpus > 1:
        from moviola.pipelines.parallel import launch

        return launch(spec, settings)
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    from moviola.pipelines.video import DiffusersVideo

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    source = spec.source
    if source.startswith(BUILTIN_PREFIX):
        from moviola.pipelines.tiny import ensure_built

        folder = ensure_built(settings.models.cache_dir, source.removeprefix(BUILTIN_PREFIX))
        log.warning("model %s has random weights: its videos are noise (built in %s)", spec.id, folder)
        source = str(folder)
    log.info("loading %s (%s) from %s", spec.id, spec.pipeline_class, source)
    return DiffusersVideo.load(
        spec,
        source,
        device=settings.models.device,
        dtype=settings.models.dtype,
        attention_backend=settings.models.attention_backend,
        memory_plan=settings.models.memory_plan,
        compile_cache=settings.models.compile_cache,
        quantization=settings.models.quantize,
        adapters=registered(settings),
        adapter_options={
            "cache_dir": settings.models.cache_dir,
            "capacity": settings.adapters.cache,
            "fuse": settings.adapters.fuse,
        },
    )
