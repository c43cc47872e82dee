"""Job queues: where accepted jobs wait, and where their events live."""

from moviola.scheduler.base import Assignment, JobQueue
from moviola.scheduler.memory import MemoryJobQueue

__all__ = ["Assignment", "JobQueue", "MemoryJobQueue"]
