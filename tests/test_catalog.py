"""The catalogue file, loading real weights from a folder, and fallback routing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import diffusers
import pytest
from fakes import ScriptedPipeline
from helpers import kinds

from moviola.catalog import BUILTIN_MODELS, load_catalog
from moviola.client import AsyncClient, ResourceExhausted
from moviola.pipelines.tiny import ensure_built
from moviola.runtime.embedded import EmbeddedServer
from moviola.settings import Settings


def test_every_entry_names_a_pipeline_the_installed_diffusers_has() -> None:
    for spec in BUILTIN_MODELS.values():
        assert hasattr(diffusers, spec.pipeline_class), spec.id
        if spec.image_pipeline_class:
            assert hasattr(diffusers, spec.image_pipeline_class), spec.id
        assert spec.license, spec.id
    opt_in = {spec.id for spec in BUILTIN_MODELS.values() if spec.opt_in}
    assert opt_in == {"hunyuanvideo", "skyreels-v2-df-1.3b"}
    assert "redistribution" in BUILTIN_MODELS["hunyuanvideo"].license


def test_catalogue_errors_name_the_entry(tmp_path: Path) -> None:
    bad = tmp_path / "catalog.toml"
    bad.write_text(
        '[[model]]\nid = "x"\ndescription = "d"\npipeline = "WanPipeline"\nsource = "s"\ncolour = "red"\n'
        "defaults = { width = 16, height = 16, num_frames = 1, fps = 8, num_inference_steps = 1, guidance_scale = 1.0 }\n"
    )
    with pytest.raises(ValueError, match=r"model 'x': unknown catalogue fields \['colour'\]"):
        load_catalog(bad)
    bad.write_text(bad.read_text().replace('colour = "red"', 'fallback = "nope"'))
    with pytest.raises(ValueError, match="fallback 'nope' is not in the catalogue"):
        load_catalog(bad)
    bad.write_text(bad.read_text().replace('description = "d"\n', ""))
    with pytest.raises(ValueError, match=r"model 'x': .*description"):
        load_catalog(bad)


async def test_model_path_loads_weights_from_a_folder_with_no_code_change(tmp_path: Path) -> None:
    """wan2.1-t2v-1.3b pointed at a folder (here the tiny model, saved with save_pretrained)."""
    folder = ensure_built(tmp_path / "weights", "tiny-wan2.1-t2v")
    settings = Settings.of(
        port=0, data_dir=tmp_path, cache_dir=tmp_path, model="wan2.1-t2v-1.3b", model_path=str(folder)
    )
    async with EmbeddedServer(settings) as server, AsyncClient(f"127.0.0.1:{server.port}") as client:
        (model,) = await client.list_models()
        assert model.source == str(folder)
        events = [
            e
            async for e in client.generate("a fox", width=64, height=64, num_frames=5, num_inference_steps=2)
        ]
    assert kinds(events)[-1] == "completed"
    assert events[-1].completed.model == "wan2.1-t2v-1.3b"


async def test_fallback_routes_to_ltx_when_the_primary_cannot_start_in_time(tmp_path: Path) -> None:
    pipelines = {
        "tiny-wan2.2-t2v": ScriptedPipeline(step_seconds=0.2, spec=BUILTIN_MODELS["tiny-wan2.2-t2v"]),
        "tiny-ltx-video": ScriptedPipeline(spec=BUILTIN_MODELS["tiny-ltx-video"]),
    }
    settings = Settings.of(port=0, data_dir=tmp_path, cache_dir=tmp_path, extra_models=("tiny-ltx-video",))
    embedded = EmbeddedServer(settings, loader=lambda spec, _: pipelines[spec.id])
    async with embedded as server, AsyncClient(f"127.0.0.1:{server.port}") as client:
        first = await client.submit("learn the run time", num_inference_steps=3, num_frames=9)
        [e async for e in client.watch(first.id)]
        primary = pipelines["tiny-wan2.2-t2v"]
        primary.block_at, primary.step_seconds = 1, 0.0
        primary.gate.clear()
        await client.submit("occupies the worker", num_inference_steps=3)
        await asyncio.to_thread(primary.reached.wait, 30)
        for i in range(3):
            await client.submit(f"queued {i}", num_inference_steps=3)

        from google.protobuf import duration_pb2

        from moviola.v1 import job_pb2 as pb

        def request(allow: bool) -> pb.GenerateRequest:
            return pb.GenerateRequest(
                prompt="in a hurry",
                model="tiny-wan2.2-t2v",
                num_frames=9,
                num_inference_steps=2,
                allow_fallback=allow,
                max_wait=duration_pb2.Duration(nanos=300_000_000),
            )

        with pytest.raises(ResourceExhausted) as info:
            await client.submit(request(False))
        assert "set allow_fallback" in info.value.message
        events = [e async for e in client.generate(request(True))]
        assert kinds(events)[-1] == "completed"
        assert {e.model for e in events} == {"tiny-ltx-video"}
        assert events[-1].completed.model == "tiny-ltx-video"
        primary.gate.set()
