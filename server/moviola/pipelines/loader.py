"""Resolve a model spec's source and load its pipeline."""

from __future__ import annotations

from collections.abc import Callable

from moviola.catalog import ModelSpec
from moviola.pipelines.base import VideoPipeline
from moviola.settings import Settings

#: What a server calls to get its pipeline; tests pass their own (a pipeline per failure mode).
PipelineLoader = Callable[[ModelSpec, Settings], VideoPipeline]


def load_pipeline(spec: ModelSpec, settings: Settings) -> VideoPipeline:
    """Load ``spec``: on one device (``single.load``; a ``builtin:`` tiny model is built into the
    cache folder on first use), or with ``gpus`` > 1 on every rank of a multi-GPU worker
    (``parallel.launch``, whose ranks each load on one device)."""
    if settings.models.gpus > 1:
        from moviola.pipelines.parallel import launch

        return launch(spec, settings)
    from moviola.pipelines.single import load

    return load(spec, settings)
