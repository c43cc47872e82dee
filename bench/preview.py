"""What a live preview costs: per step on a tiny model, and at real latent sizes against a real 480p step.

1. ``tiny``: the tiny Wan2.2 T2V pipeline (random weights) run with ``preview_every`` 0 and 1 in
   the same process, alternating; the per-step time of each, and the ratio.
2. ``real``: ``Previewer.render`` (projection, resize, JPEG) on latents of the real shapes:
   Wan2.1/2.2 at 480p/81 frames (16 channels, 21x60x104) and 720p, Wan2.2-TI2V-5B at 720p/121
   (48 channels, 31x44x80), with projections fitted from the tiny VAEs of the same channel count
   (the cost does not depend on the weights).
3. The denominator: one 480p/81-frame denoising step of the smallest catalogue model, Wan2.1-T2V-1.3B,
   estimated on this CPU from a one-layer transformer of its published width (dim 1536, 12 heads,
   FFN 8960) run on a smaller latent, scaled linearly to 32,760 tokens and 30 layers. Attention grows
   faster than linearly, so this underestimates the step, and the share printed is an upper bound.

    python bench/preview.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from moviola.catalog import BUILTIN_MODELS
from moviola.pipelines.loader import load_pipeline
from moviola.pipelines.preview import Previewer
from moviola.pipelines.video import DiffusersVideo
from moviola.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/harness/, as pytest finds it
from harness.pipeline import request_for, run_direct

STEPS = 8
#: Wan2.1-T2V-1.3B's transformer, from its published config.
WAN_1_3B = {"num_attention_heads": 12, "attention_head_dim": 128, "ffn_dim": 8960, "num_layers": 30}
#: Tokens of one 480p/81-frame latent (21 x 60 x 104, patches of 1 x 2 x 2).
TOKENS_480P = 21 * 30 * 52


def per_step(pipeline: DiffusersVideo, preview_every: int) -> float:
    request = request_for(pipeline.spec, num_inference_steps=STEPS, preview_every=preview_every)
    return run_direct(pipeline, request).hooks.timings(0, 0).denoising / STEPS


def render_seconds(previewer: Previewer, shape: tuple[int, ...], width: int, height: int, runs: int) -> float:
    latents = torch.randn(shape)
    spec = BUILTIN_MODELS["tiny-wan2.2-t2v"]  # only the size matters to a render
    request = request_for(spec, width=width, height=height, num_frames=(shape[2] - 1) * 4 + 1)
    previewer.render(latents, request)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        previewer.render(latents, request)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def step_lower_bound() -> float:
    """Seconds of one 480p Wan2.1-1.3B step on this CPU, scaled from one layer on a small latent (a lower bound)."""
    from diffusers import WanTransformer3DModel

    config = {k: v for k, v in WAN_1_3B.items() if k != "num_layers"}
    model: Any = WanTransformer3DModel(**config, num_layers=1, in_channels=16, out_channels=16)  # type: ignore[no-untyped-call]
    model.eval()
    frames, height, width = 3, 30, 52
    latents = torch.randn(1, 16, frames, height, width)
    text = torch.randn(1, 512, 4096)
    with torch.inference_mode():
        model(latents, torch.tensor([500]), text, return_dict=False)
        start = time.perf_counter()
        model(latents, torch.tensor([500]), text, return_dict=False)
        seconds = time.perf_counter() - start
    tokens = frames * (height // 2) * (width // 2)
    return seconds * (TOKENS_480P / tokens) * WAN_1_3B["num_layers"]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as cache:
        settings = Settings.of(cache_dir=Path(cache))
        wan = load_pipeline(BUILTIN_MODELS["tiny-wan2.2-t2v"], settings)
        ti2v = load_pipeline(BUILTIN_MODELS["tiny-wan2.2-ti2v"], settings)
        assert isinstance(wan, DiffusersVideo)
        assert isinstance(ti2v, DiffusersVideo)
        per_step(wan, 1)  # warm up, and fit the projection once
        off, on = [], []
        for _ in range(args.runs):
            off.append(per_step(wan, 0))
            on.append(per_step(wan, 1))
        tiny_off, tiny_on = statistics.median(off), statistics.median(on)
        d = wan.spec.defaults
        print(
            f"tiny-wan2.2-t2v {d.width}x{d.height}, {d.num_frames} frames, {STEPS} steps, median of {args.runs}:"
        )
        print(f"  step, previews off   {tiny_off * 1e3:8.2f} ms")
        print(f"  step, every step     {tiny_on * 1e3:8.2f} ms   ({tiny_on / tiny_off:.3f}x)")
        tiny_render = render_seconds(
            wan._previewer, (1, 16, 5, d.height // 8, d.width // 8), d.width, d.height, 20
        )
        print(
            f"  one preview alone    {tiny_render * 1e3:8.2f} ms   ({tiny_render / tiny_off * 100:.1f}% of a step)"
        )
        shapes = [
            ("Wan2.1/2.2 480p/81", wan, (1, 16, 21, 60, 104), 832, 480),
            ("Wan2.1/2.2 720p/81", wan, (1, 16, 21, 90, 160), 1280, 720),
            ("Wan2.2-TI2V-5B 720p/121", ti2v, (1, 48, 31, 44, 80), 1280, 704),
        ]
        rendered = {}
        print("\nreal latent sizes (render = projection + resize + JPEG):")
        for name, pipeline, shape, width, height in shapes:
            rendered[name] = render_seconds(pipeline._previewer, shape, width, height, args.runs)
            print(f"  {name:26s} {rendered[name] * 1e3:8.2f} ms")
    bound = step_lower_bound()
    share = rendered["Wan2.1/2.2 480p/81"] / bound
    print(f"\nWan2.1-T2V-1.3B 480p/81 step on this CPU (lower bound): {bound:8.1f} s")
    print(f"a 480p preview is at most {share * 100:.4f}% of it (target: under 5%)")
    return 0 if share < 0.05 else 1


if __name__ == "__main__":
    sys.exit(main())
