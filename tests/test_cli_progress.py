"""How the ``moviola`` command follows a job: the progress display, watching, cancelling, a starting server."""

from __future__ import annotations

import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from conftest import start_server
from google.protobuf.duration_pb2 import Duration
from helpers import CLIENT_ONLY, moviola, running_generation
from rich.console import Console

from moviola.client import AsyncClient, Client, Unavailable
from moviola.client.progress import follow
from moviola.testing import ServerProcess, free_port
from moviola.v1 import job_pb2 as pb


def _events() -> list[pb.JobEvent]:
    """A job whose worker was lost after two steps, run again to the end: every kind of event it sends."""
    kinds: list[pb.JobEvent] = [
        pb.JobEvent(queued=pb.Queued(position=1)),
        pb.JobEvent(started=pb.Started(worker="w1", attempt=1)),
        pb.JobEvent(phase_changed=pb.PhaseChanged(phase=pb.PHASE_TEXT_ENCODING)),
        pb.JobEvent(phase_changed=pb.PhaseChanged(phase=pb.PHASE_DENOISING)),
        *[
            pb.JobEvent(progress=pb.Progress(step=s, total_steps=4, expert=pb.EXPERT_HIGH_NOISE))
            for s in (1, 2)
        ],
        pb.JobEvent(started=pb.Started(worker="w2", attempt=2)),
        pb.JobEvent(phase_changed=pb.PhaseChanged(phase=pb.PHASE_DENOISING)),
        *[
            pb.JobEvent(
                progress=pb.Progress(
                    step=s, total_steps=4, expert=pb.EXPERT_LOW_NOISE, remaining=Duration(seconds=4 - s)
                )
            )
            for s in (1, 2, 3, 4)
        ],
        pb.JobEvent(phase_changed=pb.PhaseChanged(phase=pb.PHASE_VAE_DECODING)),
        pb.JobEvent(phase_changed=pb.PhaseChanged(phase=pb.PHASE_VIDEO_ENCODING)),
        pb.JobEvent(
            completed=pb.Completed(video_uri="file:///v/tiny-wan2.2-t2v.mp4", model="tiny-wan2.2-t2v")
        ),
    ]
    for sequence, event in enumerate(kinds, 1):
        event.job_id, event.sequence, event.model = "job-1", sequence, "tiny-wan2.2-t2v"
    return kinds


def test_progress_lines_off_a_terminal() -> None:
    out = StringIO()
    events = _events()
    terminal = follow(iter(events), Console(file=out, width=120))
    assert terminal is events[-1]
    lines = out.getvalue().splitlines()
    text = out.getvalue()
    assert "None" not in text
    assert "0/" not in text  # no step count before a step has said how many there are
    assert "submitting" not in text
    assert lines[0] == "queued (position 1)"
    assert "started on w2 (attempt 2)" in lines
    last_step = max(i for i, line in enumerate(lines) if line.startswith("step 4/4"))
    decoding = lines.index("decoding latents (VAE) (attempt 2)")
    assert decoding > last_step
    assert lines[-1].startswith("done")


def test_progress_bar_on_a_terminal() -> None:
    out = StringIO()
    console = Console(file=out, force_terminal=True, force_interactive=True, width=120, color_system=None)
    events = _events()
    assert follow(iter(events), console) is events[-1]
    text = out.getvalue()
    assert "None" not in text
    assert "submitting" not in text
    assert "(attempt 2)" in text
    # The phase after the last step is shown, with the steps still counted.
    assert "decoding latents (VAE) (attempt 2)" in text
    assert "4/4 steps" in text


def test_nothing_is_shown_before_the_first_event() -> None:
    out = StringIO()
    assert follow(iter([]), Console(file=out, force_terminal=True, force_interactive=True)) is None
    assert out.getvalue() == ""


def test_watching_after_the_end_of_a_finished_job_says_so(server: ServerProcess, client: Client) -> None:
    job = client.submit("a cat", num_frames=1, num_inference_steps=1)
    assert list(client.watch(job.id))[-1].WhichOneof("kind") == "completed"
    last = client.get(job.id).last_sequence
    for after in (last, last + 5):
        done = moviola("jobs", "watch", job.id, "--after", str(after), "--server", server.address)
        assert done.returncode == 1, done.stderr
        message = " ".join(done.stderr.split())
        assert f"job {job.id} already ended (completed) at sequence {last}; nothing after {after}" in message
        assert "Traceback" not in done.stderr
    resumed = moviola("jobs", "watch", job.id, "--after", str(last - 1), "--server", server.address)
    assert resumed.returncode == 0, resumed.stderr


def test_cancel_says_whether_there_was_anything_to_cancel(server: ServerProcess, client: Client) -> None:
    with running_generation(client) as job_id:
        running = moviola("jobs", "cancel", job_id, "--server", server.address)
        assert running.returncode == 0, running.stderr
        assert "(cancel requested)" in running.stdout
        assert list(client.watch(job_id))[-1].WhichOneof("kind") == "cancelled"
    again = moviola("jobs", "cancel", job_id, "--server", server.address)
    assert again.returncode == 1
    assert f"job {job_id} had already finished (cancelled); nothing to cancel" in again.stderr


@pytest.mark.timeout(180)
def test_generate_waits_for_a_server_that_is_still_starting(
    server: ServerProcess, cache_dir: Path, tmp_path: Path
) -> None:
    # ``server`` only so that the tiny model is built in ``cache_dir`` already.
    port = free_port()
    args = ["generate", "x", "--frames", "1", "--steps", "1", "--server", f"127.0.0.1:{port}"]
    cli = subprocess.Popen(
        [sys.executable, "-c", CLIENT_ONLY, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        time.sleep(2)  # the command is waiting with nothing listening
        assert cli.poll() is None
        with start_server(cache_dir, tmp_path, "--port", str(port)):
            _, err = cli.communicate(timeout=150)
    finally:
        cli.kill()
    assert cli.returncode == 0, err
    assert "waiting for the server" in err
    assert "video:" in err


def test_generate_gives_up_on_a_server_that_never_comes() -> None:
    port = free_port()
    started = time.monotonic()
    done = moviola("generate", "x", "--server", f"127.0.0.1:{port}", "--wait-ready", "1", timeout=30)
    assert done.returncode == 1
    assert time.monotonic() - started < 15
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: UNAVAILABLE: not ready after 1s: no server answers at 127.0.0.1:{port} yet"]
    assert "Traceback" not in done.stderr


async def test_the_async_client_waits_the_same_way(server: ServerProcess) -> None:
    async with AsyncClient(server.address) as ready:
        await ready.wait_ready(10)  # a serving server: at once, nothing to report
    port = free_port()
    reasons: list[str] = []
    async with AsyncClient(f"127.0.0.1:{port}") as absent:
        with pytest.raises(Unavailable) as info:
            await absent.wait_ready(1, waiting=reasons.append)
    assert info.value.message == f"not ready after 1s: no server answers at 127.0.0.1:{port} yet"
    assert reasons  # told why it waited
    assert set(reasons) == {f"no server answers at 127.0.0.1:{port} yet"}
