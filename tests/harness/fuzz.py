"""The fuzz suite's requests and runner: every RPC's request message, drawn by hypothesis from the descriptors.

One call in five sends bytes that are not its RPC's message (``undecodable``: random, truncated,
wrong wire types, overlong varints, strings that are not UTF-8, lengths past the end).
Every field of every request (nested messages, repeated and map fields included) may be set, to
values a hostile or broken caller would send: unknown enum values, NaN and infinities, huge and
negative numbers, 4 MiB strings, paths and URLs that reach for the server's files or a cloud's
metadata service, bad job ids; and the call's metadata: no key, a wrong or malformed key,
non-ASCII bytes, oversized headers. Each request goes to a real server over gRPC; a streaming
answer is read up to three messages and then cancelled (gRPC's interop "cancel after first
response"). What passes: no INTERNAL or UNKNOWN status, ever (``BAD``).

``make fuzz`` runs 10,000 (``scripts/fuzz.py``); ``tests/test_fuzz.py`` a fixed-seed few hundred.
"""

from __future__ import annotations

import math
import string
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import hypothesis
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moviola.auth import keys
from moviola.client import Client
from moviola.testing import ServerProcess
from moviola.v1 import embedding_pb2, generation_pb2, search_pb2
from moviola.v1 import job_pb2 as pb

#: Statuses that mean the server did not handle what it was sent.
BAD = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})
BIG = "x" * (4 * 1024 * 1024)
HOSTILE_STRINGS = [
    "",
    " ",
    "\x00",
    "\u202e\ufeff",
    "🦊" * 64,
    "../../../../etc/passwd",
    "file:///etc/passwd",
    "file:///proc/self/environ",
    "file://169.254.169.254/latest",
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://127.0.0.1:6379/",
    "s3://someone-elses-bucket/video.mp4",
    "%s%s%n",
    "'; FLUSHALL; --",
    "moviola:job:*",
    "0" * 32,
    "f" * 33,
    "-1",
]
_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_FLOATS = [math.nan, math.inf, -math.inf, -0.0, 1e308, -1e308, 3.4e38, 1e-45, -1.0]


def _strings() -> st.SearchStrategy[str]:
    rare_big = st.integers(0, 99).map(lambda n: BIG if n == 0 else "a")
    return st.one_of(st.text(max_size=40), st.sampled_from(HOSTILE_STRINGS), rare_big)


def _scalar(fd: FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = fd.type
    if kind in _INT_RANGES:
        low, high = _INT_RANGES[kind]
        edges = [low, high, 0, -1 if low < 0 else 1, 1, 2**31 - 1 if high > 2**31 else high]
        return st.one_of(st.integers(low, high), st.sampled_from(edges), st.integers(0, 100))
    if kind in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        if kind == FieldDescriptor.TYPE_FLOAT:
            return st.one_of(st.floats(width=32), st.sampled_from(_FLOATS), st.floats(0, 20, width=32))
        return st.one_of(st.floats(), st.sampled_from(_FLOATS), st.floats(0, 20))
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_STRING:
        return _strings()
    if kind == FieldDescriptor.TYPE_BYTES:
        headers = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"\x00\x00\x00\x18ftypmp42", b"RIFF"]
        return st.one_of(
            st.binary(max_size=256),
            st.sampled_from(headers).flatmap(lambda h: st.binary(max_size=64).map(lambda b: h + b)),
        )
    if kind == FieldDescriptor.TYPE_ENUM:
        assert fd.enum_type is not None
        known = [v.number for v in fd.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-3, 1000))  # proto3 enums are open
    raise TypeError(f"no strategy for field {fd.full_name} of type {kind}")


def _is_map(fd: FieldDescriptor) -> bool:
    return fd.message_type is not None and bool(fd.message_type.GetOptions().map_entry)


@st.composite
def messages(draw: st.DrawFn, descriptor: Any, depth: int = 0) -> Message:
    """A message of ``descriptor``'s type; each field set or not, nested ones down to depth 3."""
    message = GetMessageClass(descriptor)()
    for fd in descriptor.fields:
        if not draw(st.booleans()) or (fd.type == FieldDescriptor.TYPE_MESSAGE and depth >= 3):
            continue
        target = getattr(message, fd.name)
        if _is_map(fd):
            key_fd, value_fd = fd.message_type.fields_by_name["key"], fd.message_type.fields_by_name["value"]
            for _ in range(draw(st.integers(0, 3))):
                key = draw(_scalar(key_fd))
                if value_fd.type == FieldDescriptor.TYPE_MESSAGE:
                    target[key].CopyFrom(draw(messages(value_fd.message_type, depth + 1)))
                else:
                    target[key] = draw(_scalar(value_fd))
        elif fd.is_repeated:
            for _ in range(draw(st.integers(0, 3))):
                if fd.type == FieldDescriptor.TYPE_MESSAGE:
                    target.add().CopyFrom(draw(messages(fd.message_type, depth + 1)))
                else:
                    target.append(draw(_scalar(fd)))
        elif fd.type == FieldDescriptor.TYPE_MESSAGE:
            target.CopyFrom(draw(messages(fd.message_type, depth + 1)))
        else:
            setattr(message, fd.name, draw(_scalar(fd)))
    return message


def methods() -> list[MethodDescriptor]:
    services = [
        generation_pb2.DESCRIPTOR.services_by_name["GenerationService"],
        embedding_pb2.DESCRIPTOR.services_by_name["EmbeddingService"],
        search_pb2.DESCRIPTOR.services_by_name["SearchService"],
    ]
    return [method for service in services for method in service.methods]


def metadata(key: str) -> st.SearchStrategy[list[tuple[str, str | bytes]]]:
    """A call's metadata: mostly the good key, sometimes none, a wrong one, junk, or oversized headers."""
    printable = st.text(alphabet=string.printable.strip(), max_size=80)
    authorization = st.one_of(
        st.just(f"Bearer {key}"),
        st.just(f"Bearer {key[:-1]}x"),
        st.just(f"bearer {key}"),
        st.just("Bearer "),
        st.just("Basic dXNlcjpwYXNz"),
        printable.map(lambda t: f"Bearer {t}"),
        st.just("Bearer " + "k" * 20_000),
    )
    headers: st.SearchStrategy[list[tuple[str, str | bytes]]] = st.lists(
        st.one_of(
            st.tuples(st.just("authorization"), authorization),
            st.tuples(st.just("x-junk-bin"), st.binary(max_size=64)),
            st.tuples(st.just("traceparent"), printable),
            st.tuples(st.just("x-big"), st.just("v" * 20_000)),
            st.tuples(
                st.just("authorization"), st.binary(min_size=1, max_size=16).map(lambda b: b"Bearer \xff" + b)
            ),
        ),
        max_size=3,
    )
    good = st.just([("authorization", f"Bearer {key}")])
    return st.one_of(good, good, good, headers)


@dataclass(frozen=True)
class Call:
    method: MethodDescriptor
    #: The message sent, or the bytes sent where they are not one (``undecodable``).
    request: Message | bytes
    metadata: list[tuple[str, str | bytes]]

    def __repr__(self) -> str:
        text = f"{self.method.full_name}({self.request!r}) metadata={self.metadata!r}"
        return text if len(text) < 600 else text[:600] + "..."

    def serialized(self) -> bytes:
        return self.request if isinstance(self.request, bytes) else self.request.SerializeToString()


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


#: Protobuf wire types: varint, 64-bit, length-delimited, 32-bit.
WIRE_TYPES = (0, 1, 2, 5)


def _wire_type(fd: FieldDescriptor) -> int:
    if fd.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES, FieldDescriptor.TYPE_MESSAGE):
        return 2
    if fd.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64):
        return 1
    if fd.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_SFIXED32):
        return 5
    return 0


@st.composite
def undecodable(draw: st.DrawFn, descriptor: Any) -> bytes:
    """Bytes a broken or hostile client sends for ``descriptor``'s message: random bytes, a valid message
    cut short, a field with the wrong wire type, a varint longer than ten bytes, a string field that is
    not UTF-8, a length past the end."""
    fields = list(descriptor.fields)
    fd = draw(st.sampled_from(fields)) if fields else None
    number = fd.number if fd is not None else 1
    kind = draw(st.sampled_from(["random", "truncated", "wire_type", "long_varint", "utf8", "length"]))
    if kind == "random":
        return draw(st.binary(min_size=1, max_size=256))
    if kind == "truncated":
        whole = draw(messages(descriptor)).SerializeToString()
        return whole[: draw(st.integers(0, max(0, len(whole) - 1)))]
    if kind == "wire_type":
        right = _wire_type(fd) if fd is not None else 0
        wrong = draw(st.sampled_from([w for w in WIRE_TYPES if w != right]))
        return _varint(number << 3 | wrong) + draw(st.binary(min_size=0, max_size=16))
    if kind == "long_varint":
        return _varint(number << 3) + b"\xff" * draw(st.integers(10, 20)) + b"\x01"
    if kind == "utf8":
        return _varint(number << 3 | 2) + b"\x02\xff\xfe"
    return _varint(number << 3 | 2) + _varint(draw(st.integers(1, 2**31))) + b"x"


def calls(key: str) -> st.SearchStrategy[Call]:
    """Mostly well-formed messages; one call in five sends bytes that are not the RPC's message."""

    def of(method: MethodDescriptor) -> st.SearchStrategy[Call]:
        request: st.SearchStrategy[Message | bytes] = st.one_of(
            *[messages(method.input_type)] * 4, undecodable(method.input_type)
        )
        return st.builds(Call, st.just(method), request, metadata(key))

    return st.sampled_from(methods()).flatmap(of)


@dataclass
class Report:
    counts: Counter[str] = field(default_factory=Counter)
    bad: list[str] = field(default_factory=list)

    def add(self, call: Call, status: str) -> None:
        self.counts[status] += 1
        if status in {code.name for code in BAD} and len(self.bad) < 10:
            self.bad.append(f"{status}: {call!r}")

    def table(self) -> str:
        rows = [f"| {status} | {count} |" for status, count in self.counts.most_common()]
        return "\n".join(["| status | requests |", "|---|---|", *rows])


def send(channel: grpc.Channel, call: Call, timeout: float = 2.0) -> str:
    """Make the call; the status it ended with (``OK``), or ``NOT_SENT`` when the client library refused it."""
    path = f"/{call.method.containing_service.full_name}/{call.method.name}"
    serialize: Callable[[Call], bytes] = Call.serialized
    try:
        if call.method.server_streaming:
            stream: Any = channel.unary_stream(path, request_serializer=serialize)(
                call, timeout=timeout, metadata=tuple(call.metadata)
            )
            for seen, _ in enumerate(stream):
                if seen == 2:
                    stream.cancel()  # gRPC interop: cancel after a response
                    return "OK"
        else:
            channel.unary_unary(path, request_serializer=serialize)(
                call, timeout=timeout, metadata=tuple(call.metadata)
            )
    except grpc.RpcError as error:
        code = error.code() if isinstance(error, grpc.Call) else None
        if code is None:
            return "NOT_SENT"
        if code is grpc.StatusCode.INTERNAL and error.details() == "Invalid metadata":
            return "NOT_SENT"  # the client library refused to send it (non-ASCII bytes in a text header)
        return str(code.name)
    except ValueError:
        return "NOT_SENT"
    return "OK"


def run(address: str, key: str, examples: int, *, seed: int | None = None) -> Report:
    """``examples`` generated calls to the server at ``address``; their statuses, and the bad ones.

    The same calls every time unless ``seed`` is given.
    """
    report = Report()
    options = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
    with grpc.insecure_channel(address, options=options) as channel:

        @settings(
            max_examples=examples,
            derandomize=seed is None,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(calls(key))
        def one(call: Call) -> None:
            report.add(call, send(channel, call))

        if seed is not None:
            one = hypothesis.seed(seed)(one)
        one()
    return report


def rss_bytes(pid: int) -> int:
    """A process's resident memory (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


class Target:
    """What the fuzz suite attacks: a gateway with an auth file on a real redis-server, no worker yet.

    Jobs it accepts only queue (at most ``depth`` per model), so no fuzzed job runs; afterwards
    ``serves_a_normal_job`` cancels them, starts a simulated worker and runs an ordinary job.
    """

    def __init__(self, folder: Path, redis_url: str, *, depth: int = 8) -> None:
        self.folder, self.redis_url = folder, redis_url
        auth_file = folder / "auth.json"
        self.key = keys.create_key(auth_file, "fuzz")
        self.gateway = ServerProcess(
            [
                *("--redis-url", redis_url, "--accept-without-workers", "--auth-file", str(auth_file)),
                *("--data-dir", str(folder), "--max-queue-depth", str(depth)),
            ]
        )

    def __enter__(self) -> Target:
        self.gateway.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.gateway.stop()

    @property
    def address(self) -> str:
        return self.gateway.address

    def serves_a_normal_job(self) -> str:
        """Cancel what the fuzzing queued, start a worker, run one small job; its last event's kind."""
        with Client(self.address, api_key=self.key) as client:
            page, token = client.list_jobs(page_size=100, state=pb.JOB_STATE_QUEUED)
            while page:
                for job in page:
                    client.cancel(job.id)
                page, token = (
                    client.list_jobs(page_size=100, page_token=token, state=pb.JOB_STATE_QUEUED)
                    if token
                    else ([], "")
                )
            program = [sys.executable, "-m", "moviola.runtime", "simulated-worker"]
            args = ["--redis-url", self.redis_url, "--data-dir", str(self.folder), "--name", "after-fuzzing"]
            with ServerProcess(args, program=program, worker=True):
                events = list(client.generate("an ordinary job", num_inference_steps=2, num_frames=5))
        return str(events[-1].WhichOneof("kind"))
