"""Jobs and their events: plain, immutable data shared by gateway, queue and worker.

A job's state is never stored apart from its events: ``JobRecord.apply`` folds
each event into the record, so a record is always what its events say.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field, replace


class Priority(enum.IntEnum):
    """Scheduling class; lower values start first."""

    INTERACTIVE = 0
    BATCH = 1


class JobState(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


#: States a job never leaves: the one definition (the Redis scripts are given it too).
TERMINAL_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})


class Phase(enum.Enum):
    TEXT_ENCODING = "text_encoding"
    DENOISING = "denoising"
    VAE_DECODING = "vae_decoding"
    VIDEO_ENCODING = "video_encoding"
    STORING = "storing"


class Expert(enum.Enum):
    """Which transformer ran a denoising step."""

    SINGLE = "single"
    HIGH_NOISE = "high_noise"
    LOW_NOISE = "low_noise"


class FailureCode(enum.Enum):
    INTERNAL = "internal"
    OUT_OF_MEMORY = "out_of_memory"
    INVALID_INPUT = "invalid_input"
    UNAVAILABLE = "unavailable"
    DEAD_LETTERED = "dead_lettered"
    #: It did not start before its max_wait or the caller's deadline passed.
    DEADLINE_EXCEEDED = "deadline_exceeded"


@dataclass(frozen=True)
class LoraChoice:
    """A LoRA adapter a request names (``moviola.adapters``) and the weight it applies with."""

    name: str
    scale: float = 1.0


@dataclass(frozen=True)
class JobRequest:
    """A validated request: every default filled in, the seed chosen."""

    model: str
    prompt: str
    negative_prompt: str
    image: bytes | None
    width: int
    height: int
    num_frames: int
    fps: int
    num_inference_steps: int
    guidance_scale: float
    guidance_scale_2: float | None
    seed: int
    priority: Priority = Priority.INTERACTIVE
    idempotency_key: str = ""
    #: W3C trace context of the submit, carried to the worker (empty: not traced).
    traceparent: str = ""
    #: Unix time by which the job must start (its max_wait or the caller's deadline), else it fails; None: any time.
    start_by: float | None = None
    #: The tenant that submitted the job ("" without an auth file); only it sees the job.
    tenant: str = ""
    #: The job whose request this one repeats with a new prompt (the REST face's remix); "" for none.
    remixed_from: str = ""
    #: The name the caller gave the model when it was not the id (an alias like ``sora-2``, a family); "" else.
    requested_model: str = ""
    #: The job whose video this one continues (an extension: the video first, then ``num_frames`` in all);
    #: its video's storage URI and frame count. "", "", 0: a video of its own.
    extended_from: str = ""
    continue_from: str = ""
    continued_frames: int = 0
    #: An edit (video-to-video with a new prompt): the job whose video it edits ("" for an uploaded one),
    #: the stored source's URI (its ``num_frames`` frames at this size; "": not an edit), and how far the
    #: edit may stray from it (0 < strength <= 1: the share of the denoising steps that run).
    edited_from: str = ""
    edit_from: str = ""
    strength: float = 0.0
    #: Where this job's events are POSTed as signed webhooks ("" for none), and which events.
    webhook_url: str = ""
    webhook_events: tuple[str, ...] = ()
    #: Attach a preview image to every N-th step's PROGRESS event (0: none).
    preview_every: int = 0
    #: "exact", "fast" or "turbo" (``moviola.pipelines.speed``); "": the worker's default.
    speed_profile: str = ""
    #: The LoRA adapters to apply, in the order named (none with scale 0: those are dropped at validation).
    loras: tuple[LoraChoice, ...] = ()

    @property
    def idempotency_scope(self) -> str:
        """The idempotency key as looked up: per tenant, so that two tenants' keys never collide."""
        return f"{self.tenant}/{self.idempotency_key}" if self.tenant else self.idempotency_key

    def batch_key(self) -> str:
        """What jobs must share to run as one batch (``--max-batch``): model, size, frames, steps, guidance,
        speed profile and adapter set with scales; "" for a job that never batches (one with an input image,
        an edit)."""
        if self.image is not None or self.edit_from:
            return ""
        size = (self.width, self.height, self.num_frames, self.num_inference_steps, self.fps)
        guidance = (self.guidance_scale, self.guidance_scale_2)
        adapters = ",".join(f"{lora.name}:{lora.scale!r}" for lora in self.loras)
        return "|".join(str(part) for part in (self.model, *size, *guidance, self.speed_profile, adapters))


@dataclass(frozen=True)
class Queued:
    position: int


@dataclass(frozen=True)
class Started:
    worker: str
    attempt: int


@dataclass(frozen=True)
class PhaseChanged:
    phase: Phase


@dataclass(frozen=True)
class Preview:
    """A small image of the latents at a step (``moviola.pipelines.preview``)."""

    image: bytes
    width: int
    height: int
    mime_type: str = "image/jpeg"


@dataclass(frozen=True)
class Progress:
    step: int
    total_steps: int
    timestep: float
    expert: Expert
    elapsed: float
    remaining: float
    #: Only on the steps a request with ``preview_every`` asked for; never kept on the record.
    preview: Preview | None = None
    #: The step cache served this step (no full transformer pass ran).
    cached: bool = False
    #: Full transformer passes of this step: 2 with classifier-free guidance, 1 without, 0 cached.
    transformer_passes: int = 0
    #: On the first step only: the adapters the run applies.
    loras: tuple[LoraChoice, ...] = ()
    #: Of a long video made as segments: this step's segment (1-based) and how many; 0, 0 for one window.
    segment: int = 0
    total_segments: int = 0


@dataclass(frozen=True)
class Timings:
    """Seconds spent in each part of a job."""

    queued: float = 0.0
    text_encoding: float = 0.0
    denoising: float = 0.0
    vae_decoding: float = 0.0
    video_encoding: float = 0.0
    storing: float = 0.0
    running: float = 0.0


@dataclass(frozen=True)
class Completed:
    video_uri: str
    width: int
    height: int
    num_frames: int
    fps: int
    seed: int
    model: str
    timings: Timings
    size_bytes: int
    mime_type: str = "video/mp4"
    peak_memory_bytes: int = 0
    #: The poster image beside the video (empty for jobs stored before posters existed).
    thumbnail_uri: str = ""
    #: The speed profile the job ran with ("exact", "fast"), and the steps its cache served.
    speed_profile: str = ""
    cached_steps: int = 0
    #: The adapters that ran (the turbo profile's own included), and the transformer passes of the video.
    loras: tuple[LoraChoice, ...] = ()
    transformer_passes: int = 0
    #: How the worker stored the transformers' weights ("none", "int8", "fp8", "fp8-dynamic").
    quantization: str = ""
    #: Segments the video was made of (1: one model window).
    segments: int = 1


@dataclass(frozen=True)
class Failed:
    code: FailureCode
    message: str
    retryable: bool = False


@dataclass(frozen=True)
class Cancelled:
    reason: str


EventKind = Queued | Started | PhaseChanged | Progress | Completed | Failed | Cancelled
TERMINAL_KINDS = (Completed, Failed, Cancelled)


@dataclass(frozen=True)
class JobEvent:
    job_id: str
    sequence: int
    time: float
    model: str
    kind: EventKind

    @property
    def terminal(self) -> bool:
        return isinstance(self.kind, TERMINAL_KINDS)


@dataclass(frozen=True)
class JobRecord:
    """What is known about a job: its request and the fold of its events."""

    id: str
    request: JobRequest
    created_at: float = field(default_factory=time.time)
    state: JobState = JobState.QUEUED
    last_sequence: int = 0
    queue_position: int = 0
    started_at: float | None = None
    #: The worker of its latest start ("" before one), as its STARTED event names it.
    worker: str = ""
    #: When the terminal event happened.
    finished_at: float | None = None
    progress: Progress | None = None
    result: Completed | None = None
    failure: Failed | None = None
    cancellation: Cancelled | None = None

    @property
    def model(self) -> str:
        return self.request.model

    def apply(self, event: JobEvent) -> JobRecord:
        """Return the record after ``event``."""
        kind = event.kind
        record = replace(self, last_sequence=event.sequence)
        match kind:
            case Queued(position=position):
                return replace(record, state=JobState.QUEUED, queue_position=position)
            case Started(worker=worker):
                return replace(
                    record, state=JobState.RUNNING, queue_position=0, started_at=event.time, worker=worker
                )
            case Progress():
                return replace(record, progress=kind if kind.preview is None else replace(kind, preview=None))
            case Completed():
                return replace(record, state=JobState.COMPLETED, result=kind, finished_at=event.time)
            case Failed():
                return replace(
                    record, state=JobState.FAILED, failure=kind, queue_position=0, finished_at=event.time
                )
            case Cancelled():
                return replace(
                    record,
                    state=JobState.CANCELLED,
                    cancellation=kind,
                    queue_position=0,
                    finished_at=event.time,
                )
        return record
