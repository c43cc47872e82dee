"""Load a model's pipeline on one device: this process, one card or the CPU.

``loader.load_pipeline`` calls it for a one-GPU worker; each rank of a multi-GPU worker
(``parallel.py``) calls it for its own card.
"""

from __future__ import annotations

import logging

from moviola.adapters import registered
from moviola.catalog import BUILTIN_PREFIX, ModelSpec
from moviola.pipelines.base import VideoPipeline
from moviola.settings import Settings

log = logging.getLogger(__name__)


def load(spec: ModelSpec, settings: Settings) -> VideoPipeline:
    """Load ``spec`` on ``settings.models.device``; a ``builtin:`` tiny model is built on first use."""
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
            "s3_endpoint": settings.storage.s3_endpoint,
            "capacity": settings.adapters.cache,
            "fuse": settings.adapters.fuse,
        },
    )
