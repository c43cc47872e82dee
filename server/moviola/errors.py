"""Domain errors of the Moviola server.

Every error the server expects is a ``MoviolaError`` of one transport-neutral ``Kind``; each face
keys its own status table on the kind (``api/status.py`` for gRPC codes, ``rest/errors.py`` for HTTP
statuses), and nothing below the faces imports grpc or HTTP. Foreign errors (torch out-of-memory,
storage I/O) are translated where they arise, with ``raise ... from exc``.

    MoviolaError
    ├── Unauthenticated         no API key, or one the auth file does not hold
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

import enum
from typing import ClassVar


class Kind(enum.Enum):
    """What went wrong, as every face tells its callers (a gRPC code, an HTTP status)."""

    INVALID_ARGUMENT = "invalid_argument"
    UNAUTHENTICATED = "unauthenticated"
    PERMISSION_DENIED = "permission_denied"
    NOT_FOUND = "not_found"
    FAILED_PRECONDITION = "failed_precondition"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


class MoviolaError(Exception):
    """Base of every error the server expects."""

    #: What callers are told went wrong.
    kind: ClassVar[Kind] = Kind.INTERNAL
    #: Whether repeating the same call may succeed.
    retryable: bool = False

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: Seconds after which a retry may succeed, when known.
        self.retry_after = retry_after


class Unauthenticated(MoviolaError):
    """The call carries no API key, or one the auth file does not hold (unknown, revoked, malformed)."""

    kind = Kind.UNAUTHENTICATED


class InvalidRequest(MoviolaError):
    """A request field is invalid. ``field`` names it as in the proto."""

    kind = Kind.INVALID_ARGUMENT

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class NotFound(MoviolaError):
    """Something the request names does not exist."""

    kind = Kind.NOT_FOUND


class PermissionDenied(MoviolaError):
    """The server is not allowed to read what the request names."""

    kind = Kind.PERMISSION_DENIED


class FailedPrecondition(MoviolaError):
    """Valid, but not now or not here (a job that has not finished, a backend this server lacks)."""

    kind = Kind.FAILED_PRECONDITION


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

    kind = Kind.UNAVAILABLE
    retryable = True


class ResourceExhausted(MoviolaError):
    """Too much work is queued; retry after ``retry_after`` seconds."""

    kind = Kind.RESOURCE_EXHAUSTED
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
