"""The worker: takes jobs from the queue and runs them on the loaded pipeline."""

from moviola.worker.runner import Worker

__all__ = ["Worker"]
