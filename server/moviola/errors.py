"""Domain errors of the Moviola server.

Every error the server expects is a ``MoviolaError``; the gRPC layer
(``moviola.api.status``) maps each kind to one status code, and nothing below
``moviola.api`` imports grpc. Foreign errors (torch out-of-memory, storage I/O)
are translated where they arise, with ``raise ... from exc``.

    MoviolaError
    ├── InvalidRequest          a request field is wrong (names the field)
    ├── NotFound                something named in the request does not exist
    │   └── JobNotFound         no job with that id
    ├── PermissionDenied        the server may not read what the request names
    ├── FailedPrecondition      the request is valid but the system is not in a state to serve it
    │   └── NotInStorage        a URI that should name a stored video points outside the server's storage
    ├── Unavailable             the server cannot take work now (loading, draining)
    ├── ResourceExhausted       the queue is full; retry after a delay
    ├── JobError                raised inside a running job
    │   ├── JobCancelled        cancellation requested; stop at once
    │   ├── OutOfMemory         the accelerator or host ran out of memory
    │   ├── InvalidInput        what the job names cannot be used (an adapter whose file fails to load)
    │   └── PipelineFailed      any other failure inside the pipeline
    └── LeaseLost               a worker no longer owns the job it runs (taken over, or finished)
"""

from __future__ import annotations


class MoviolaError(Exception):
    """Base of every error the server expects."""

    #: Whether repeating the same call may succeed.
    retryable: bool = False

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: Seconds after which a retry may succeed, when known.
        self.retry_after = retry_after


class InvalidRequest(MoviolaError):
    """A request field is invalid. ``field`` names it as in the proto."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class NotFound(MoviolaError):
    """Something the request names does not exist."""


class PermissionDenied(MoviolaError):
    """The server is not allowed to read what the request names."""


class FailedPrecondition(MoviolaError):
    """Valid, but not now or not here (a job that has not finished, a backend this server lacks)."""


class NotInStorage(FailedPrecondition):
    """A URI given to the storage as one of its videos lies outside it (another folder, scheme or host).

    Not the caller's mistake, and no retry helps: the record that holds the URI is wrong.
    """


class JobNotFound(NotFound):
    """No job with this id exists (or it expired)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id!r} not found")
        self.job_id = job_id


class Unavailable(MoviolaError):
    """The server cannot accept work now; another replica or a later retry can."""

    retryable = True


class ResourceExhausted(MoviolaError):
    """Too much work is queued; retry after ``retry_after`` seconds."""

    retryable = True


class JobError(MoviolaError):
    """Raised while a job runs; ends that job, never the server."""


class JobCancelled(JobError):
    """The job was cancelled; the pipeline stops at the next step."""


class OutOfMemory(JobError):
    """The accelerator or the host ran out of memory during the job."""

    retryable = True


class InvalidInput(JobError):
    """What the job names cannot be used (an adapter that fails at its first load); the worker stays up."""


class PipelineFailed(JobError):
    """Any other error inside the pipeline."""


class LeaseLost(MoviolaError):
    """The job was taken over by another worker or has finished: stop working on it, publish nothing."""
