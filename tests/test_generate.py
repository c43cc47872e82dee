"""Generate over gRPC with the real client and the real tiny Wan2.2 pipeline."""

from __future__ import annotations

import numpy as np
from helpers import decode, kinds, path_of

from moviola.client import Client
from moviola.testing import ServerProcess
from moviola.v1 import job_pb2 as pb


def test_events_arrive_in_order_with_one_progress_per_step(client: Client) -> None:
    events = list(
        client.generate("a red fox running through snow", num_frames=9, num_inference_steps=6, seed=7)
    )

    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert kinds(events)[0] == "queued"
    assert kinds(events)[1] == "started"
    assert kinds(events)[-1] == "completed"
    assert sum(k in ("completed", "failed", "cancelled") for k in kinds(events)) == 1
    phases = [e.phase_changed.phase for e in events if e.WhichOneof("kind") == "phase_changed"]
    assert phases == [
        pb.PHASE_TEXT_ENCODING,
        pb.PHASE_DENOISING,
        pb.PHASE_VAE_DECODING,
        pb.PHASE_VIDEO_ENCODING,
        pb.PHASE_STORING,
    ]
    steps = [e.progress for e in events if e.WhichOneof("kind") == "progress"]
    assert [s.step for s in steps] == [1, 2, 3, 4, 5, 6]
    assert all(s.total_steps == 6 for s in steps)
    assert steps[-1].remaining.ToNanoseconds() == 0
    assert all(e.job_id == events[0].job_id and e.model == "tiny-wan2.2-t2v" for e in events)
    times = [e.time.ToNanoseconds() for e in events]
    assert times == sorted(times)


def test_experts_switch_once_from_high_to_low_noise_at_the_boundary(client: Client) -> None:
    events = list(client.generate("a cat", num_frames=5, num_inference_steps=10, seed=1))
    steps = [e.progress for e in events if e.WhichOneof("kind") == "progress"]
    experts = [s.expert for s in steps]
    switch = experts.index(pb.EXPERT_LOW_NOISE)
    assert 0 < switch < len(experts)
    assert experts == [pb.EXPERT_HIGH_NOISE] * switch + [pb.EXPERT_LOW_NOISE] * (len(experts) - switch)
    boundary = 0.875 * 1000  # boundary_ratio of Wan2.2-T2V-A14B times the training timesteps
    assert all(s.timestep >= boundary for s in steps[:switch])
    assert all(s.timestep < boundary for s in steps[switch:])


def test_mp4_decodes_to_the_requested_frames_and_size(client: Client) -> None:
    events = list(client.generate("a dog", width=96, height=64, num_frames=13, fps=12, num_inference_steps=2))
    done = events[-1].completed
    assert (done.width, done.height, done.num_frames, done.fps) == (96, 64, 13, 12)
    assert done.mime_type == "video/mp4"
    path = path_of(done.video_uri)
    assert path.stat().st_size == done.size_bytes
    frames, codec, pix_fmt = decode(path)
    assert frames.shape == (13, 64, 96, 3)
    assert (codec, pix_fmt) == ("h264", "yuv420p")
    assert done.timings.denoising.ToNanoseconds() > 0
    assert done.timings.running.ToNanoseconds() >= done.timings.denoising.ToNanoseconds()


def test_same_seed_same_video_other_seed_other_video(client: Client) -> None:
    def video(seed: int) -> tuple[bytes, np.ndarray]:
        done = list(client.generate("the sea at night", num_frames=5, num_inference_steps=3, seed=seed))[
            -1
        ].completed
        assert done.seed == seed
        path = path_of(done.video_uri)
        return path.read_bytes(), decode(path)[0]

    first_bytes, first = video(42)
    again_bytes, again = video(42)
    _, other = video(43)
    assert first_bytes == again_bytes
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_unset_seed_is_chosen_and_reported(client: Client) -> None:
    done = list(client.generate("a city", num_frames=1, num_inference_steps=1))[-1].completed
    job = client.get(
        list(client.generate("a city", num_frames=1, num_inference_steps=1, seed=done.seed))[-1].job_id
    )
    assert job.result.seed == done.seed
    assert job.request.seed == done.seed


def test_list_models_shows_defaults_limits_and_noise_warning(client: Client) -> None:
    models = client.list_models()
    assert len(models) == 7
    model = models[0]  # the default comes first
    assert model.id == "tiny-wan2.2-t2v"
    assert model.ready
    assert model.random_weights
    assert model.mixture_of_experts
    assert model.boundary_ratio == 0.875
    assert model.pipeline_class == "WanPipeline"
    assert (model.defaults.width, model.defaults.num_frames) == (128, 17)
    assert (model.limits.size_multiple, model.limits.frame_multiple) == (16, 4)


def test_start_up_prints_only_moviola_lines(server: ServerProcess, client: Client) -> None:
    """Loading every tiny model (pipelines, SigLIP 2, DINOv2) prints none of the libraries' warnings."""
    assert client.list_models()[0].ready
    ready = server.wait_for_log("ready: serving")
    start_up = server.log_lines[: ready + 1]
    assert any("moviola.embed.local: embedding model" in line for line in start_up)  # models did load
    foreign = [line for line in start_up if " moviola." not in line]
    assert foreign == []
