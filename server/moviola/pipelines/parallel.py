"""Multi-GPU workers (``--gpus N``): one worker spanning N devices, launched as one process per rank.

The worker's process is rank 0: it takes jobs, emits their events and stores their videos, as ever.
It starts ranks 1..N-1 itself (``launch``), each a process holding the model on its own device
(``cuda:R``; the CPU in tests), joined by ``torch.distributed`` (NCCL on GPUs, gloo on the CPU; the
control messages always go over a gloo group). For every job rank 0 sends the request to every rank,
and all run the same pipeline call with the same seed; at the end of each step rank 0 tells the
others whether to go on, so a cancelled job stops on every rank at the same step and the ranks stay
in step for the next job. Rank 0 decodes and returns the video; the others' copies are dropped.
An edit runs the same way: rank 0, which read the source video from storage, sends its frames after
the request, and every rank runs the model's video-to-video pipeline on them.

Two ways to split the work (``--parallel``):

- ``cfg`` (2 ranks, Wan pipelines): classifier-free guidance's two transformer passes run at the same
  time, the conditional one on rank 0 and the unconditional one on rank 1; their outputs are
  exchanged (one all-gather per step) and both ranks go on with identical latents. Jobs without
  guidance (guidance_scale <= 1) run replicated.
- ``ulysses`` / ``ring`` (N ranks, GPUs only): diffusers' context parallelism (``enable_parallelism``)
  splits every attention's sequence across the ranks. diffusers requires an accelerator for it, so
  this mode is not exercised on the CPU (docs/models.md says what is unverified).

A rank that fails mid-job leaves the others waiting in a collective: the pipeline is then marked
broken, every later job fails as UNAVAILABLE (retryable), and the worker must be restarted (its pod's liveness probe).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import multiprocessing
import queue as queues
import socket
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from moviola.catalog import BUILTIN_PREFIX, ModelSpec
from moviola.errors import FailedPrecondition, InvalidInput, JobCancelled, Unavailable
from moviola.jobs import JobRequest, Phase
from moviola.pipelines import speed
from moviola.pipelines.base import Frames, StepHooks, VideoPipeline, WrappedHooks
from moviola.settings import Settings

log = logging.getLogger(__name__)

#: Seconds a collective may wait for a rank (a GPU step is seconds; a rank gone stops the worker after this).
TIMEOUT = datetime.timedelta(seconds=600)
#: Seconds every rank has to load its model.
LOAD_TIMEOUT = 1800.0


def mode_for(settings: Settings) -> str:
    mode = settings.models.parallel
    if mode == "auto":
        return "cfg" if settings.models.gpus == 2 else "ulysses"
    return mode


def _check(spec: ModelSpec, settings: Settings) -> str:
    world, mode = settings.models.gpus, mode_for(settings)
    if mode == "cfg" and world != 2:
        raise FailedPrecondition(
            f"--parallel cfg splits the two guidance passes: it needs --gpus 2, not {world}"
        )
    if mode == "cfg" and not spec.pipeline_class.startswith("Wan"):
        raise FailedPrecondition(f"--parallel cfg runs Wan pipelines; {spec.id} is a {spec.pipeline_class}")
    if mode in ("ulysses", "ring") and torch.cuda.device_count() < world:
        raise FailedPrecondition(
            f"--parallel {mode} is diffusers' context parallelism, which needs {world} GPUs "
            f"({torch.cuda.device_count()} here); on fewer, use --parallel cfg with --gpus 2"
        )
    return mode


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _join(rank: int, world: int, address: str, cuda: bool) -> Any:
    """Join the process group; the gloo group that carries requests and step flags."""
    if cuda:
        torch.cuda.set_device(rank)
    dist.init_process_group(
        "nccl" if cuda else "gloo", init_method=address, rank=rank, world_size=world, timeout=TIMEOUT
    )
    return dist.new_group(backend="gloo", timeout=TIMEOUT) if cuda else dist.group.WORLD


def _load_rank(spec: ModelSpec, settings: Settings, rank: int, mode: str, cuda: bool) -> Any:
    from moviola.pipelines.single import load

    device = f"cuda:{rank}" if cuda else "cpu"
    own = replace(settings, models=replace(settings.models, device=device, gpus=1))
    pipeline = load(spec, own)
    transformers = speed.transformers(pipeline._pipe)  # type: ignore[attr-defined]
    if mode == "cfg":
        pipeline.cfg_splits = [CfgSplit(t, rank) for t in transformers]  # type: ignore[attr-defined]
    else:
        from diffusers import ContextParallelConfig

        degree = {"ulysses_degree" if mode == "ulysses" else "ring_degree": settings.models.gpus}
        for transformer in transformers:
            transformer.enable_parallelism(config=ContextParallelConfig(**degree))
        pipeline.cfg_splits = []  # type: ignore[attr-defined]
    return pipeline


class CfgSplit:
    """One transformer's guidance passes split across two ranks (see the module's docstring).

    Per step the pipeline calls the transformer for the conditional branch, then the unconditional
    one. Rank 0 computes the first call; rank 1 answers it with a placeholder it fills in later and
    computes the second; at the second call the two results are exchanged.
    """

    def __init__(self, transformer: Any, rank: int) -> None:
        self._forward = transformer.forward
        self._out_channels = transformer.config.out_channels
        self._rank = rank
        self.active = False
        self._second = False
        self._kept: torch.Tensor | None = None
        #: Transformer passes this rank computed (tests check that the work was split).
        self.computed = 0
        transformer.forward = self.forward

    def start_job(self, guided: bool) -> None:
        self.active, self._second, self.computed = guided, False, 0

    def _compute(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        self.computed += 1
        kwargs["return_dict"] = False
        out: torch.Tensor = self._forward(*args, **kwargs)[0]
        return out

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        wants_dict = kwargs.get("return_dict", True)
        if not self.active:
            out = self._compute(*args, **kwargs)
        elif not self._second:
            self._second = True
            if self._rank == 0:
                out = self._kept = self._compute(*args, **kwargs)
            else:
                hidden = kwargs.get("hidden_states", args[0] if args else None)
                assert hidden is not None
                shape = (hidden.shape[0], self._out_channels, *hidden.shape[2:])
                out = self._kept = torch.empty(shape, dtype=hidden.dtype, device=hidden.device)
        else:
            self._second = False
            assert self._kept is not None
            mine = self._compute(*args, **kwargs) if self._rank == 1 else self._kept
            gathered = [torch.empty_like(mine) for _ in range(2)]
            dist.all_gather(gathered, mine.contiguous())
            if self._rank == 1:
                self._kept.copy_(gathered[0])  # the conditional output the pipeline holds
            out = gathered[1]
        if wants_dict:
            from diffusers.models.modeling_outputs import Transformer2DModelOutput

            return Transformer2DModelOutput(sample=out)
        return (out,)


def _flag(value: int, group: Any) -> int:
    tensor = torch.tensor([value], dtype=torch.int32)
    dist.broadcast(tensor, src=0, group=group)
    return int(tensor.item())


class _LeaderHooks(WrappedHooks):
    """Rank 0's hooks: the job's own, with a cancel deferred to the next step, where every rank stops."""

    def __init__(self, hooks: StepHooks, group: Any) -> None:
        super().__init__(hooks)
        self._group = group
        self._synced_last = False

    def phase_cancelled(self, exc: JobCancelled) -> None:
        if self._synced_last:  # after the last step nothing is shared: stop here
            raise exc
        self.pending = exc

    def after_step(self, step: int, total_steps: int, cancel: JobCancelled | None) -> None:
        _flag(int(cancel is not None), self._group)
        self._synced_last = step == total_steps
        if cancel is not None:
            raise cancel


class _FollowerHooks:
    """Another rank's hooks: no events; stop when rank 0 says so."""

    def __init__(self, group: Any) -> None:
        self._group = group

    def phase(self, phase: Phase) -> None:
        pass

    def wants_preview(self, step: int, total_steps: int) -> bool:
        return False

    def step(self, step: int, total_steps: int, *_: Any, **__: Any) -> None:
        if _flag(0, self._group):
            raise JobCancelled("cancelled on rank 0")

    def peak_memory(self, peak_bytes: int) -> None:
        pass


def _start_job(pipeline: Any, request: JobRequest) -> None:
    for split in pipeline.cfg_splits:
        split.start_job(request.guidance_scale > 1.0)


def _share_video(video: Frames | None, request: JobRequest, group: Any) -> Frames:
    """An edit's source video, from rank 0 (``video``) to every rank (None), over the gloo group."""
    shape = (request.num_frames, request.height, request.width, 3)
    frames = (
        torch.empty(shape, dtype=torch.uint8)
        if video is None
        else torch.from_numpy(np.ascontiguousarray(video))
    )
    dist.broadcast(frames, src=0, group=group)
    return frames.numpy()


def _follow(
    spec: ModelSpec, settings: Settings, rank: int, address: str, mode: str, cuda: bool, ready: Any
) -> None:
    """A follower rank's life: load, say so, then run what rank 0 sends until it sends None."""
    try:
        group = _join(rank, settings.models.gpus, address, cuda)
        pipeline = _load_rank(spec, settings, rank, mode, cuda)
    except Exception as exc:
        ready.put((rank, f"{type(exc).__name__}: {exc}"))
        raise
    ready.put((rank, ""))
    hooks = _FollowerHooks(group)
    while True:
        message: list[Any] = [None, False]
        dist.broadcast_object_list(message, src=0, group=group)
        request, editing = message
        if request is None:
            break
        video = _share_video(None, request, group) if editing else None
        _start_job(pipeline, request)
        with contextlib.suppress(JobCancelled):
            if video is None:
                pipeline.generate(request, hooks)
            else:
                pipeline.edit(request, hooks, video)
    dist.destroy_process_group()


class ParallelPipeline:
    """Rank 0 of a multi-GPU worker: a ``VideoPipeline`` whose every job runs on all ranks."""

    def __init__(self, local: Any, group: Any, followers: list[Any]) -> None:
        self._local, self._group, self._followers = local, group, followers
        self._broken = ""

    @property
    def spec(self) -> ModelSpec:
        spec: ModelSpec = self._local.spec
        return spec

    @property
    def computed(self) -> int:
        """Transformer passes rank 0 computed in the last job."""
        return sum(split.computed for split in self._local.cfg_splits)

    def generate(self, request: JobRequest, hooks: StepHooks) -> Frames:
        return self._lead(request, hooks, lambda leader: self._local.generate(request, leader))

    def edit(self, request: JobRequest, hooks: StepHooks, video: Frames) -> Frames:
        """``video`` remade on every rank (``EditingPipeline``): the ranks edit as they generate."""
        if not self.spec.video_pipeline_class:  # refused before the other ranks hear of it
            raise InvalidInput(f"model {self.spec.id} cannot edit videos")
        return self._lead(request, hooks, lambda leader: self._local.edit(request, leader, video), video)

    def _lead(
        self,
        request: JobRequest,
        hooks: StepHooks,
        run: Callable[[StepHooks], Frames],
        video: Frames | None = None,
    ) -> Frames:
        """Send the job (and an edit's source video) to every rank, then ``run`` it here with the
        leader's hooks."""
        if self._broken:
            raise Unavailable(f"this multi-GPU worker must be restarted: {self._broken}")
        dist.broadcast_object_list([request, video is not None], src=0, group=self._group)
        if video is not None:
            _share_video(video, request, self._group)
        _start_job(self._local, request)
        try:
            return run(_LeaderHooks(hooks, self._group))
        except JobCancelled:
            raise
        except Exception as exc:  # the other ranks may be waiting in a collective: this group is done
            self._broken = f"{type(exc).__name__}: {exc}"
            log.error("rank 0 failed mid-job; the worker must be restarted: %s", self._broken)
            raise

    def close(self) -> None:
        if self._broken or not dist.is_initialized():
            return
        dist.broadcast_object_list([None, False], src=0, group=self._group)
        for follower in self._followers:
            follower.join(timeout=30)
        dist.destroy_process_group()


def launch(spec: ModelSpec, settings: Settings) -> VideoPipeline:
    """Start ranks 1..N-1, join them as rank 0, load, and return once every rank is ready."""
    mode = _check(spec, settings)
    if dist.is_initialized():
        raise FailedPrecondition("one multi-GPU model per process: serve other models from their own workers")
    # A tiny model is built before the ranks join: under torch.distributed, transformers writes weights on
    # rank 0 only, so a build by another rank would leave its text encoder empty (and cached so).
    if spec.source.startswith(BUILTIN_PREFIX):
        from moviola.pipelines.tiny import ensure_built

        ensure_built(settings.models.cache_dir, spec.source.removeprefix(BUILTIN_PREFIX))
    world, cuda = settings.models.gpus, torch.cuda.is_available() and settings.models.device != "cpu"
    address = f"tcp://127.0.0.1:{_free_port()}"
    context = multiprocessing.get_context("spawn")
    ready = context.Queue()
    followers = [
        context.Process(
            target=_follow,
            args=(spec, settings, rank, address, mode, cuda, ready),
            name=f"rank-{rank}",
            daemon=True,
        )
        for rank in range(1, world)
    ]
    for follower in followers:
        follower.start()
    log.info("model %s on %d ranks (--parallel %s)", spec.id, world, mode)
    group = _join(0, world, address, cuda)
    local = _load_rank(spec, settings, 0, mode, cuda)
    for _ in followers:
        try:
            rank, error = ready.get(timeout=LOAD_TIMEOUT)
        except queues.Empty:
            error, rank = "did not load in time", -1
        if error:
            for follower in followers:
                follower.terminate()
            raise FailedPrecondition(f"rank {rank} of the multi-GPU worker could not start: {error}")
    return ParallelPipeline(local, group, followers)
