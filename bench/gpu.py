"""Real-size Wan transformers on one GPU: seconds per denoising step and peak memory, plain diffusers
against each of Moviola's levers, in one run (``make bench-gpu``).

The transformers are built at their published sizes with random weights (``moviola.pipelines.published``;
nothing is downloaded): Wan2.1-T2V-1.3B, Wan2.2-TI2V-5B and one Wan2.2-A14B expert, at 480p and 81
frames (832x480), bf16, with classifier-free guidance (two transformer passes a step) and
FlowMatch-Euler steps, as the pipelines run them. Each variant runs a warm-up step, then ``--steps``
timed steps (few: GPU time is scarce; the median is reported). Variants:

- ``plain``: diffusers as it comes (native SDPA attention, eager).
- ``attention``: the fastest attention backend installed (``_native_cudnn``, ``flash``, ``_flash_3``, ``sage``).
- ``compile``: ``compile_repeated_blocks`` (``--compile``), native attention.
- ``exact``: Moviola's exact profile on a tuned worker: the best attention backend, compiled.
- ``fast``: ``exact`` plus First Block Cache at the catalogue's threshold (the fast profile). With
  random weights the cache's decisions say little about a real model's: the cached steps are shown.

    python bench/gpu.py                    # on a GPU: the table, with the card's name
    python bench/gpu.py --smoke            # on a CPU: two-layer transformers at a toy size, a smoke test
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from moviola.catalog import BUILTIN_MODELS
from moviola.pipelines import compiled
from moviola.pipelines.published import WAN_TRANSFORMERS, wan_transformer
from moviola.pipelines.tiny_lora import LIGHTNING_TARGETS, random_lora

BACKENDS = ("_native_cudnn", "flash", "_flash_3", "sage")
#: The cost-per-video rows run on ``--cost-models`` only (the A14B expert by default), which keeps the whole
#: run within its budget on an H100.
COST_VARIANTS = ("int8", "fp8", "turbo", "turbo+fp8+compile")
VARIANTS = ("plain", "attention", "compile", "exact", "fast", *COST_VARIANTS)
#: LoRA targets of the published Wan2.2-Lightning adapters: every linear layer of the blocks' attention and FFN.
#: Steps a video takes: the catalogue's 40 with guidance (2 passes a step), turbo's 4 without (1 pass).
VIDEO_STEPS = {"turbo": 4, "turbo+fp8+compile": 4}
DEFAULT_STEPS = BUILTIN_MODELS["wan2.2-t2v-a14b"].defaults.num_inference_steps
THRESHOLD = BUILTIN_MODELS["wan2.2-t2v-a14b"].fast_threshold


@dataclass(frozen=True)
class Shape:
    width: int
    height: int
    frames: int
    text_tokens: int

    def latents(self, name: str) -> tuple[int, int, int, int]:
        config, spatial, temporal = WAN_TRANSFORMERS[name]
        return (
            config["in_channels"],
            (self.frames - 1) // temporal + 1,
            self.height // spatial,
            self.width // spatial,
        )


FULL = Shape(832, 480, 81, 512)
SMOKE = Shape(64, 64, 5, 16)


@dataclass
class Row:
    model: str
    variant: str
    seconds: float
    peak_gib: float
    cached: str = ""
    note: str = ""


class Loop:
    """Denoising steps as Wan's pipeline runs them: cond and uncond passes, guidance, an Euler step."""

    def __init__(
        self, model: Any, name: str, shape: Shape, device: str, dtype: torch.dtype, cfg: bool = True
    ) -> None:
        self.cfg = cfg
        generator = torch.Generator(device).manual_seed(0)
        self.model = model
        self.latents = torch.randn((1, *shape.latents(name)), generator=generator, device=device, dtype=dtype)
        text = (1, shape.text_tokens, 4096)
        self.cond = torch.randn(text, generator=generator, device=device, dtype=dtype)
        self.uncond = torch.randn(text, generator=generator, device=device, dtype=dtype)
        self.device = device
        self.index = 0
        self.passes = 0
        model.blocks[-1].register_forward_hook(self._count)

    def _count(self, *_: object) -> None:
        self.passes += 1

    _count = torch.compiler.disable(_count)  # type: ignore[no-untyped-call]

    def step(self, steps: int) -> bool:
        """One step of ``steps``; whether the step cache served it (no full pass ran)."""
        sigma, after = 1.0 - self.index / steps, 1.0 - (self.index + 1) / steps
        timestep = torch.tensor([sigma * 1000.0], device=self.device)
        before = self.passes
        with torch.inference_mode():
            outputs = []
            for name, text in (("cond", self.cond), ("uncond", self.uncond))[: 2 if self.cfg else 1]:
                with self.model.cache_context(name):
                    outputs.append(
                        self.model(
                            hidden_states=self.latents,
                            timestep=timestep,
                            encoder_hidden_states=text,
                            return_dict=False,
                        )[0]
                    )
            noise = outputs[1] + 5.0 * (outputs[0] - outputs[1]) if self.cfg else outputs[0]
            self.latents = self.latents + (after - sigma) * noise
        self.index = (self.index + 1) % steps
        return self.passes == before


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@contextmanager
def _cache(model: Any, on: bool) -> Iterator[None]:
    if not on:
        yield
        return
    from diffusers import FirstBlockCacheConfig

    model.enable_cache(FirstBlockCacheConfig(threshold=THRESHOLD))  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        model.disable_cache()


def _best_backend(device: str) -> str | None:
    """The first installed backend of ``BACKENDS`` that runs here (each is tried on a tiny attention)."""
    if not device.startswith("cuda"):
        return None
    from diffusers.models.attention_dispatch import attention_backend, dispatch_attention_fn

    q = torch.randn(1, 64, 2, 64, device=device, dtype=torch.bfloat16)
    for name in BACKENDS:
        try:
            with attention_backend(name):
                dispatch_attention_fn(q, q, q)
        except Exception:  # not installed, or no kernel for this card
            continue
        return name
    return None


def _quantize(model: Any, how: str, device: str) -> str:
    """int8 weight-only; fp8: float8 matmuls where the card has them (8.9+), else float8 weight-only."""
    from torchao.quantization import (
        Float8DynamicActivationFloat8WeightConfig,
        Float8WeightOnlyConfig,
        Int8WeightOnlyConfig,
        quantize_,
    )

    dynamic = how == "fp8" and device.startswith("cuda") and torch.cuda.get_device_capability() >= (8, 9)
    if how == "int8":
        config: Any = Int8WeightOnlyConfig()
    else:
        config = Float8DynamicActivationFloat8WeightConfig() if dynamic else Float8WeightOnlyConfig()
    quantize_(model, config)
    return "fp8-dynamic" if dynamic else f"{how} weight-only"


def adapter_ops(build: Callable[[], Any], device: str, rank: int) -> tuple[float, float, float]:
    """Seconds to load a LoRA adapter into a transformer, switch to another one, and unload one."""
    import warnings

    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # "missing keys": the other adapter's, when two are loaded
    warnings.filterwarnings("ignore", message="Already found a `peft_config`", category=UserWarning)
    model = build()
    states = [random_lora(model, rank, LIGHTNING_TARGETS) for _ in range(2)]
    _sync(device)
    started = time.perf_counter()
    model.load_lora_adapter(states[0], adapter_name="a", prefix="transformer")
    _sync(device)
    load = time.perf_counter() - started
    model.load_lora_adapter(states[1], adapter_name="b", prefix="transformer")
    model.set_adapters(["a"], [1.0])
    _sync(device)
    started = time.perf_counter()
    model.set_adapters(["b"], [1.0])
    _sync(device)
    switch = time.perf_counter() - started
    started = time.perf_counter()
    model.delete_adapters(["a"])
    _sync(device)
    unload = time.perf_counter() - started
    del model
    return load, switch, unload


def measure(
    build: Callable[[], Any], name: str, variant: str, args: argparse.Namespace, cache_dir: Path
) -> Row:
    device, dtype = args.device, args.dtype
    backend = _best_backend(device) if variant in ("attention", "exact", "fast") else None
    if variant == "attention" and backend is None:
        return Row(name, variant, float("nan"), float("nan"), note="no faster backend installed")
    model = build()
    note = ""
    if variant in ("int8", "fp8", "turbo+fp8+compile"):
        note = _quantize(model, "int8" if variant == "int8" else "fp8", device)
    if backend:
        model.set_attention_backend(backend)
        note = backend
    if variant in ("compile", "exact", "fast", "turbo+fp8+compile"):
        compiled.compile_transformers([model], cache_dir)
        note = f"{note} compiled".strip()
    loop = Loop(model, name, args.shape, device, dtype, cfg=not variant.startswith("turbo"))
    with _cache(model, variant == "fast"):
        started = time.perf_counter()
        loop.step(args.steps + 1)  # warm-up (and compilation)
        _sync(device)
        if "compile" in note:
            note += f", warm-up {time.perf_counter() - started:.0f}s"
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        seconds, cached = [], 0
        for _ in range(args.steps):
            started = time.perf_counter()
            cached += loop.step(args.steps + 1)
            _sync(device)
            seconds.append(time.perf_counter() - started)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else float("nan")
    del model, loop
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return Row(
        name,
        variant,
        statistics.median(seconds),
        peak,
        f"{cached}/{args.steps}" if variant == "fast" else "",
        note,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--smoke", action="store_true", help="two-layer transformers at a toy size, on the CPU"
    )
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant (after one warm-up)")
    parser.add_argument("--models", nargs="+", default=list(WAN_TRANSFORMERS), choices=list(WAN_TRANSFORMERS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument(
        "--cost-models",
        nargs="*",
        default=["wan2.2-a14b-expert"],
        choices=list(WAN_TRANSFORMERS),
        help="models that also run the cost rows (int8, fp8, turbo, turbo+fp8+compile) and the adapter timings",
    )
    parser.add_argument(
        "--videos",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="end with whole videos (text encoding to MP4) of Wan2.2-T2V-A14B and TI2V-5B (bench/gpu_video.py)",
    )
    parser.add_argument("--compile-cache-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    args.device = "cpu" if args.smoke else "cuda"
    if not args.smoke and not torch.cuda.is_available():
        print("bench/gpu.py needs a CUDA GPU (or --smoke, on the CPU)", file=sys.stderr)
        return 2
    args.dtype = torch.float32 if args.smoke else torch.bfloat16
    args.shape = SMOKE if args.smoke else FULL
    changes = {"num_layers": 2} if args.smoke else {}
    card = torch.cuda.get_device_name() if not args.smoke else "CPU (smoke: 2 layers, 64x64, 5 frames)"
    shape = args.shape
    print(f"GPU: {card}; {shape.width}x{shape.height}, {shape.frames} frames, {args.steps} timed steps, CFG")
    print(
        "| model | variant | s/step | vs plain | peak GiB | cached | notes | s/video (denoising) | vs plain |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        cache_dir = args.compile_cache_dir or Path(scratch)
        for name in args.models:

            def build(name: str = name) -> Any:
                return wan_transformer(name, device=args.device, dtype=args.dtype, **changes)

            plain: float | None = None
            for variant in args.variants:
                if variant in COST_VARIANTS and name not in args.cost_models:
                    continue
                row = measure(build, name, variant, args, cache_dir)
                plain = row.seconds if variant == "plain" else plain
                ratio = f"{plain / row.seconds:.2f}x" if plain and row.seconds == row.seconds else ""
                video = row.seconds * VIDEO_STEPS.get(variant, DEFAULT_STEPS)
                per_video = f"{plain * DEFAULT_STEPS / video:.2f}x" if plain and video == video else ""
                print(
                    f"| {name} | {variant} | {row.seconds:.3f} | {ratio} | {row.peak_gib:.1f} | {row.cached} "
                    f"| {row.note} | {video:.1f} | {per_video} |",
                    flush=True,
                )
        if set(args.models) & set(args.cost_models):
            print()
            print("| model | LoRA rank | load s | switch s | unload s |")
            print("|---|---|---|---|---|")
        for name in args.models:
            if name in args.cost_models:
                rank = 4 if args.smoke else 64
                load, switch, unload = adapter_ops(
                    functools.partial(wan_transformer, name, device=args.device, dtype=args.dtype, **changes),
                    args.device,
                    rank,
                )
                print(f"| {name} | {rank} | {load:.3f} | {switch:.4f} | {unload:.3f} |", flush=True)
    if args.videos:
        _videos(args)
    return 0


def _videos(args: argparse.Namespace) -> None:
    from gpu_video import rows

    shape = "64x64, 5 frames (smoke)" if args.smoke else "832x480, 81 frames"
    print()
    print(f"| video ({shape}) | profile | s/video (text to MP4) | s denoising | passes |")
    print("|---|---|---|---|---|")
    for model in ("wan2.2-t2v-a14b", "wan2.2-ti2v-5b"):
        for name, profile, total, denoise, passes in rows(model, args.device, args.dtype, args.smoke):
            print(f"| {name} | {profile} | {total:.1f} | {denoise:.1f} | {passes} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
