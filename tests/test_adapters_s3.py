"""Adapters registered from an S3 prefix (``--lora-dir s3://...``) on a real S3 server (SeaweedFS)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from harness.pipeline import request_for, run_direct
from harness.s3 import S3Server

from moviola.adapters import scan_dir
from moviola.catalog import BUILTIN_MODELS
from moviola.errors import FailedPrecondition
from moviola.jobs import LoraChoice
from moviola.pipelines.loader import load_pipeline
from moviola.pipelines.tiny_lora import build_tiny_lora
from moviola.settings import Settings

MODEL = "tiny-wan2.2-t2v"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with S3Server(tmp_path_factory.mktemp("s3"), bucket="models") as server:
        yield server


def test_an_s3_prefix_registers_files_and_folders_that_load_like_local_ones(
    s3: S3Server, tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in s3.client_env().items():
        monkeypatch.setenv(name, value)
    local = tmp_path / "local"
    build_tiny_lora(local / "style", MODEL, seed=1)
    client = s3.client()
    for file in (local / "style").iterdir():
        client.upload_file(str(file), "models", f"loras/style/{file.name}")
    client.upload_file(
        str(local / "style" / "high_noise_model.safetensors"), "models", "loras/high-only.safetensors"
    )
    found = scan_dir("s3://models/loras/", MODEL, s3.endpoint)
    assert sorted(found.adapters) == ["high-only", "style"]
    assert found.adapters["style"].per_expert and not found.adapters["high-only"].per_expert  # noqa: PT018
    spec = BUILTIN_MODELS[MODEL]
    remote = load_pipeline(spec, Settings.of(cache_dir=tmp_path / "cache", lora_dir=("s3://models/loras/",)))
    near = load_pipeline(spec, Settings.of(cache_dir=cache_dir, lora_dir=(str(local),)))
    request = request_for(
        spec, width=64, height=64, num_frames=9, num_inference_steps=4, loras=(LoraChoice("style"),)
    )
    np.testing.assert_array_equal(run_direct(remote, request).frames, run_direct(near, request).frames)
    assert (
        tmp_path / "cache" / "adapters" / "s3" / "models" / "loras" / "style"
    ).is_dir()  # fetched once, kept


def test_an_unreachable_prefix_stops_the_start_saying_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moviola.testing import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    with pytest.raises(FailedPrecondition, match=r"--lora-dir s3://models/loras/: cannot list it"):
        load_pipeline(
            BUILTIN_MODELS[MODEL], Settings.of(cache_dir=tmp_path, lora_dir=("s3://models/loras/",))
        )
