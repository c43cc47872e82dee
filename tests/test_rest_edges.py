"""The REST face's edges: OpenAI's error body on every answer, bad input refused at the door, and an
OpenAPI document that declares what the server answers.

One real server (auth file, the default text-only model and an image-to-video one); the ``openai``
SDK where a migrating caller would meet the edge, httpx where the SDK cannot go (OPTIONS, raw bodies).
Every status answered here is recorded, and the last test checks each against docs/openapi.json.
"""

from __future__ import annotations

import base64
import io
import json
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

from moviola.auth import keys
from moviola.catalog import BUILTIN_MODELS
from moviola.client import Client
from moviola.client.errors import InvalidArgument
from moviola.errors import ResourceExhausted
from moviola.jobs import Expert, JobRecord, JobState, Progress
from moviola.rest import errors as rest_errors
from moviola.rest import openapi, videos
from moviola.rest.limits import MAX_BODY_BYTES
from moviola.testing import ServerProcess, free_port
from moviola.v1 import job_pb2 as pb
from moviola.validation import RequestDraft, validate

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")

T2V, I2V = "tiny-wan2.2-t2v", "tiny-wan2.2-i2v"
DOCUMENT = json.loads((Path(__file__).resolve().parent.parent / "docs" / "openapi.json").read_text())
#: (method, path, status) of every answer the tests below got.
ANSWERED: list[tuple[str, str, int]] = []


class Rest:
    def __init__(self, server: ServerProcess, base: str, key: str) -> None:
        self.server, self.base, self.key = server, base, key
        hooks = {"response": [lambda r: _record(r.request.method, r.request.url.path, r.status_code)]}
        self.http = httpx.Client(
            base_url=base, headers={"authorization": f"Bearer {key}"}, timeout=60, event_hooks=hooks
        )
        self.sdk = openai.OpenAI(
            base_url=f"{base}/v1",
            api_key=key,
            max_retries=0,
            http_client=openai.DefaultHttpxClient(event_hooks=hooks),
        )

    def ids(self) -> set[str]:
        return {video.id for video in self.sdk.videos.list(limit=100).data}


def _record(method: str, path: str, status: int) -> None:
    ANSWERED.append((method, path, status))


@pytest.fixture(scope="module")
def rest(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rest]:
    folder = tmp_path_factory.mktemp("rest-edges")
    auth_file = folder / "auth.json"
    key = keys.create_key(auth_file, "acme")
    port = free_port()
    args = ["--data-dir", str(folder), "--cache-dir", str(cache_dir), "--http-port", str(port)]
    with ServerProcess([*args, "--auth-file", str(auth_file), "--also-serve", I2V]) as server:
        made = Rest(server, f"http://127.0.0.1:{port}", key)
        yield made
        made.http.close()
        made.sdk.close()


def png(size: tuple[int, int] = (64, 64)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 80, 40)).save(out, format="PNG")
    return out.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def truncated_png() -> bytes:
    """The report's file: every chunk whole with its checksum, the pixel data cut off half way."""
    rows = b"".join(b"\0" + bytes(range(192)) for _ in range(64))
    cut = zlib.compress(rows)[:200]
    ihdr = struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", cut) + _chunk(b"IEND", b"")


def error_of(response: httpx.Response) -> dict[str, Any]:
    """OpenAI's error body, exactly its four fields."""
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return dict(body["error"])


def test_an_unknown_path_is_the_sdks_not_found(rest: Rest) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        rest.sdk.get("/nothing/here", cast_to=object)
    assert caught.value.body == {
        "message": "Invalid URL (GET /v1/nothing/here)",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    error_of(rest.http.post("/v2/videos", json={}))


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/v1/videos/video_1", "DELETE, GET"),  # two routes serve this path
        ("PUT", "/v1/videos", "GET, POST"),
        ("PATCH", "/v1/videos/video_1/content", "GET"),
        ("GET", "/v1/videos/video_1/remix", "POST"),
    ],
)
def test_a_wrong_method_is_405_with_every_method_the_path_serves(
    rest: Rest, method: str, path: str, allow: str
) -> None:
    response = rest.http.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert error_of(response)["type"] == "invalid_request_error"
    for each in allow.split(", "):  # every method Allow names is served (404: no such video, not 405)
        assert rest.http.request(each, path, json={}).status_code != 405


def test_the_sdk_gets_its_own_error_for_a_wrong_method(rest: Rest) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        rest.sdk.put("/videos", cast_to=object)
    assert caught.value.status_code == 405
    assert "GET, POST" in caught.value.message


def test_an_oversized_body_is_413_whether_its_length_is_declared_or_not(rest: Rest) -> None:
    over = b"x" * (MAX_BODY_BYTES + 1)
    headers = {"content-type": "multipart/form-data; boundary=b"}
    declared = rest.http.post("/v1/videos", content=over, headers=headers)
    assert declared.status_code == 413
    assert "limit" in error_of(declared)["message"]

    def streamed() -> Iterator[bytes]:
        yield b"--b\r\ncontent-disposition: form-data; name=input_reference; filename=a.png\r\n\r\n"
        for _ in range(MAX_BODY_BYTES // (1 << 20) + 1):
            yield b"x" * (1 << 20)

    chunked = rest.http.post("/v1/videos", content=streamed(), headers=headers)
    assert chunked.status_code == 413
    error_of(chunked)
    with pytest.raises(openai.APIStatusError) as caught:  # the SDK, uploading too large a file
        rest.sdk.videos.create(prompt="a fox", input_reference=("big.png", over, "image/png"))
    assert caught.value.status_code == 413


def test_bodies_that_cannot_be_parsed_are_400(rest: Rest) -> None:
    not_json = rest.http.post(
        "/v1/videos", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400
    assert error_of(not_json)["param"] == "body"
    no_boundary = rest.http.post(
        "/v1/videos", content=b"--x\r\n", headers={"content-type": "multipart/form-data"}
    )
    assert no_boundary.status_code == 400
    error_of(no_boundary)
    bad_limit = rest.http.get("/v1/videos", params={"limit": "many"})
    assert bad_limit.status_code == 400
    assert error_of(bad_limit)["param"] == "limit"
    bad_order = rest.http.get("/v1/videos", params={"order": "sideways"})
    assert bad_order.status_code == 400
    assert error_of(bad_order)["param"] == "order"


def test_a_truncated_png_is_refused_at_submit_naming_input_reference(rest: Rest) -> None:
    before = rest.ids()
    with pytest.raises(openai.BadRequestError) as caught:
        rest.sdk.videos.create(
            prompt="a fox",
            model=I2V,
            input_reference=("fox.png", truncated_png(), "image/png"),
        )
    assert caught.value.body["param"] == "input_reference"  # type: ignore[index]
    assert "truncated" in caught.value.message
    assert rest.ids() == before  # nothing queued


def test_a_truncated_png_is_invalid_argument_naming_image_on_grpc(rest: Rest) -> None:
    with Client(rest.server.address, api_key=rest.key, timeout=30) as client:
        with pytest.raises(InvalidArgument) as caught:
            client.submit(pb.GenerateRequest(model=I2V, prompt="a fox", image=truncated_png()))
        assert caught.value.field == "image"
        with pytest.raises(InvalidArgument) as text_only:
            client.submit(pb.GenerateRequest(model=T2V, prompt="a fox", image=png()))
        assert text_only.value.field == "image"
        assert "text-to-video only" in str(text_only.value)


def test_an_image_on_a_text_only_model_is_refused_in_both_encodings(rest: Rest) -> None:
    before = rest.ids()
    with pytest.raises(openai.BadRequestError) as multipart:
        rest.sdk.videos.create(prompt="a fox", model=T2V, input_reference=("fox.png", png(), "image/png"))
    assert multipart.value.body["param"] == "input_reference"  # type: ignore[index]
    data_url = "data:image/png;base64," + base64.b64encode(png()).decode()
    as_json = rest.http.post(
        "/v1/videos", json={"prompt": "a fox", "model": T2V, "input_reference": {"image_url": data_url}}
    )
    assert as_json.status_code == 400
    error = error_of(as_json)
    assert error["param"] == "input_reference"
    assert "text-to-video only" in error["message"]
    assert rest.ids() == before


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ({"file_id": "file-123"}, "Files API"),
        ({"image_url": "https://example.com/fox.png"}, "fetches no URLs"),
        ({"image_url": "data:image/png;base64,@@@"}, "base64"),
        ("fox.png", "must be an image file"),
    ],
)
def test_reference_objects_moviola_cannot_use_are_refused(
    rest: Rest, reference: object, message: str
) -> None:
    response = rest.http.post(
        "/v1/videos", json={"prompt": "a fox", "model": I2V, "input_reference": reference}
    )
    assert response.status_code == 400
    error = error_of(response)
    assert error["param"] == "input_reference"
    assert message in error["message"]


def test_a_data_url_reference_is_an_image_on_an_image_to_video_model(rest: Rest) -> None:
    data_url = "data:image/png;base64," + base64.b64encode(png()).decode()
    body = {"prompt": "a fox", "model": I2V, "size": "64x64", "seconds": "1", "steps": 1}
    made = rest.http.post("/v1/videos", json=body | {"input_reference": {"image_url": data_url}})
    assert made.status_code == 200, made.text
    assert made.json()["status"] == "queued"


def test_two_input_references_are_refused(rest: Rest) -> None:
    before = rest.ids()
    files = [
        ("input_reference", ("a.png", png(), "image/png")),
        ("input_reference", ("b.png", png(), "image/png")),
    ]
    response = rest.http.post("/v1/videos", data={"prompt": "a fox", "model": I2V}, files=files)
    assert response.status_code == 400
    error = error_of(response)
    assert error["param"] == "input_reference"
    assert "one image" in error["message"]
    assert rest.ids() == before


def test_errors_of_a_running_video_and_of_a_missing_key(rest: Rest) -> None:
    """409 (not finished), 404 (no such video) and 401 (no key), on the routes that answer them."""
    video = rest.sdk.videos.create(prompt="slow", size="64x64", seconds="1", extra_body={"steps": 50})  # type: ignore[arg-type]
    assert rest.http.get(f"/v1/videos/{video.id}/content").status_code == 409
    assert rest.http.delete(f"/v1/videos/{video.id}").status_code == 409
    assert rest.http.post(f"/v1/videos/{video.id}/cancel").status_code == 200
    for method, path in (("GET", "/v1/videos/video_none"), ("POST", "/v1/videos/video_none/remix")):
        assert rest.http.request(method, path, json={"prompt": "x"}).status_code == 404
    anonymous = httpx.post(f"{rest.base}/v1/videos", json={"prompt": "x"})
    _record("POST", "/v1/videos", anonymous.status_code)
    assert anonymous.status_code == 401
    assert error_of(anonymous)["type"] == "authentication_error"


def test_the_operators_routes_refuse_a_tenants_key_and_search_says_what_it_lacks(rest: Rest) -> None:
    """Like their gRPC twins: the admin routes 403 for a tenant's key; search needs --search-index (409)."""
    for method, path in (
        ("GET", "/v1/admin/fleet"),
        ("GET", "/v1/admin/dead_letters"),
        ("POST", "/v1/admin/dead_letters/video_none/requeue"),
    ):
        refused = rest.http.request(method, path)
        assert refused.status_code == 403, path
        assert error_of(refused)["type"] == "permission_error"
    assert rest.http.post("/v1/videos/search", json={"text": "a fox"}).status_code == 409
    for body, param in (({"text": "a", "video_id": "b"}, "text"), ({"text": "a", "top_k": -1}, "top_k")):
        answer = rest.http.post("/v1/videos/search", json=body)
        assert answer.status_code == 400
        assert error_of(answer)["param"] == param
    anonymous = httpx.get(f"{rest.base}/v1/admin/fleet")
    _record("GET", "/v1/admin/fleet", anonymous.status_code)
    assert anonymous.status_code == 401
    model = next(m for m in rest.sdk.models.list().data if m.id == I2V).model_dump()
    assert model["image_input"] == "required"
    assert model["sizes"][0] == "128x128"
    assert model["max_seconds"] > model["default_seconds"] > 0


def test_the_create_body_declares_every_field_the_server_reads() -> None:
    assert set(openapi.CREATE_JSON["properties"]) == set(videos.KNOWN)
    assert set(openapi.CREATE_FORM["properties"]) == set(videos.KNOWN)


def _template(path: str) -> str | None:
    """The document's path for ``path`` (a literal path before one with a parameter)."""
    matches = [p for p in DOCUMENT["paths"] if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", p), path)]
    return min(matches, key=lambda p: p.count("{")) if matches else None


def test_the_document_declares_every_status_the_server_answered() -> None:
    """Last: every (route, status) answered above is declared, with OpenAI's error body for errors."""
    assert len(ANSWERED) > 20, "run with the tests above"
    undeclared = set()
    for method, path, status in ANSWERED:
        template = _template(path)
        operation = DOCUMENT["paths"].get(template, {}).get(method.lower()) if template else None
        if operation is None:
            assert status in (404, 405), (method, path, status)  # not a route: the tests above check those
            continue
        declared = operation["responses"].get(str(status))
        if declared is None:
            undeclared.add((method, template, status))
        elif status >= 400:
            schema = declared["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}
    assert not undeclared
    parameters = {
        (path, p["name"]): p["schema"]
        for path, operations in DOCUMENT["paths"].items()
        for operation in operations.values()
        for p in operation.get("parameters", [])
    }
    assert parameters[("/v1/videos", "order")]["enum"] == ["asc", "desc"]
    assert {"video", "thumbnail"} <= set(parameters[("/v1/videos/{video_id}/content", "variant")]["enum"])
    for path, method in (("/v1/videos", "post"), ("/v1/videos/{video_id}/remix", "post")):
        content = DOCUMENT["paths"][path][method]["requestBody"]["content"]
        assert set(content) == {"multipart/form-data", "application/json"}


def test_errors_say_whether_the_sdk_should_retry(rest: Rest) -> None:
    refused = rest.http.post(
        "/v1/videos", json={"prompt": "x", "model": T2V, "webhook_url": "https://example.com/h"}
    )
    assert refused.status_code == 409  # no secret to sign webhooks with: asking again cannot help
    assert refused.headers["x-should-retry"] == "false"
    assert rest.http.get("/v1/videos/video_nope").headers["x-should-retry"] == "false"
    busy = rest_errors.from_error(ResourceExhausted("full", retry_after=2.0))
    assert (busy.status_code, busy.headers["x-should-retry"], busy.headers["retry-after"]) == (
        429,
        "true",
        "2",
    )


def test_an_extension_by_id_takes_no_model(rest: Rest) -> None:
    answer = rest.http.post(
        "/v1/videos/extensions",
        json={"video": {"id": "video_x"}, "prompt": "on", "seconds": "1", "model": T2V},
    )
    assert answer.status_code == 400
    assert error_of(answer)["param"] == "model"


def test_progress_counts_the_steps_of_every_segment() -> None:
    request = validate(RequestDraft(prompt="x", seconds="4"), BUILTIN_MODELS, "tiny-wan2.2-ti2v")
    record = JobRecord(id="j", request=request, state=JobState.RUNNING)
    shown = []
    for segment, step in [(1, 1), (1, 4), (2, 1), (2, 4)]:
        progress = Progress(
            step=step,
            total_steps=4,
            timestep=0.0,
            expert=Expert.SINGLE,
            elapsed=0.0,
            remaining=0.0,
            segment=segment,
            total_segments=2,
        )
        shown.append(videos.video(replace(record, progress=progress), None)["progress"])
    assert shown == [12, 50, 62, 99]  # it only rises, across the seam too
