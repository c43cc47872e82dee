"""Video pipelines: the seam between a job and the model that renders it."""

from moviola.pipelines.base import StepHooks, VideoPipeline

__all__ = ["StepHooks", "VideoPipeline"]
