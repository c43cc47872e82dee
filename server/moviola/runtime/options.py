"""Command-line options the serving commands share: durations, and the model options of ``serve`` and ``worker``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from moviola.catalog import DEFAULT_MODEL, MEMORY_PLANS

F = TypeVar("F", bound=Callable[..., Any])
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class Duration(click.ParamType):  # type: ignore[type-arg]
    """Seconds, written ``90``, ``90s``, ``15m``, ``12h``, ``7d`` or ``2w``."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, int | float):
            return float(value)
        text = str(value).strip().lower()
        unit = _UNITS.get(text[-1:])
        number = text[:-1] if unit is not None else text
        try:
            seconds = float(number) * (unit or 1)
        except ValueError:
            self.fail(f"{value!r} is not a duration such as 3600, 90s, 15m, 12h or 7d", param, ctx)
        if seconds <= 0:
            self.fail(f"{value!r} must be positive", param, ctx)
        return seconds


def model_options(func: F) -> F:
    for option in reversed(
        [
            click.option(
                "--model", default=DEFAULT_MODEL, help="Model id from the catalogue (`moviola models`)."
            ),
            click.option(
                "--catalog",
                type=click.Path(path_type=Path, exists=True, dir_okay=False),
                default=None,
                help="Catalogue file (default: the one shipped with Moviola).",
            ),
            click.option(
                "--model-path", default=None, help="Local folder or hub id of the model's diffusers weights."
            ),
            click.option(
                "--data-dir", type=click.Path(path_type=Path), default=None, help="Where videos are stored."
            ),
            click.option(
                "--storage-url",
                default=None,
                help="Where videos go: file:///PATH or s3://BUCKET/PREFIX (AWS credentials and "
                "AWS_ENDPOINT_URL_S3 from the standard chain). Default: DATA_DIR/videos.",
            ),
            click.option(
                "--url-ttl",
                type=Duration(),
                default="1h",
                help="How long a download link (presigned S3 URL) works.",
            ),
            click.option(
                "--retention",
                "video_retention",
                type=Duration(),
                default=None,
                help="Delete a job's video and poster this long after it completed (e.g. 7d). Default: keep.",
            ),
            click.option(
                "--store-timeout",
                type=Duration(),
                default="120s",
                help="Seconds storing a video is retried while the storage is unreachable before the job fails.",
            ),
            click.option(
                "--cache-dir",
                type=click.Path(path_type=Path),
                default=None,
                help="Where tiny models are built.",
            ),
            click.option("--device", default="auto", help="auto, cpu, cuda or cuda:N."),
            click.option(
                "--speed-profile",
                default="exact",
                type=click.Choice(["exact", "fast", "turbo"]),
                help="Requests that name no speed profile run with this one (fast: a step cache; turbo: the "
                "model's step-distilled adapter, its steps, no guidance).",
            ),
            click.option(
                "--quantize",
                default="auto",
                type=click.Choice(["auto", "none", "int8", "fp8", "fp8-dynamic"]),
                help="The transformers' weights: int8 or fp8 weight-only, fp8-dynamic (float8 matmuls, compute "
                "capability 8.9+); auto: the memory plan's (catalogue). Checked before ready.",
            ),
            click.option(
                "--lora",
                "lora",
                multiple=True,
                metavar="NAME=SOURCE",
                help="Register a LoRA adapter of the served model's family (repeatable); SOURCE: a "
                ".safetensors file, a folder, s3://BUCKET/KEY or a hub id. Callers name it in loras.",
            ),
            click.option(
                "--lora-dir",
                "lora_dir",
                multiple=True,
                help="Register every .safetensors file and folder in this folder, or under s3://BUCKET/PREFIX/, "
                "as an adapter (repeatable).",
            ),
            click.option(
                "--lora-catalog",
                type=click.Path(path_type=Path, dir_okay=False, exists=True),
                default=None,
                help="A TOML file of [[adapter]] entries: name, source, base, description, license, "
                "trigger_words, high_noise/low_noise (docs/models.md).",
            ),
            click.option(
                "--lora-cache",
                default=8,
                type=click.IntRange(1, 256),
                help="LoRA adapters a worker keeps loaded (least recently used ones are unloaded).",
            ),
            click.option(
                "--fuse-lora/--no-fuse-lora",
                default=False,
                help="Fuse the active adapters into the weights (for a worker serving one adapter set all day).",
            ),
            click.option(
                "--memory-plan",
                default="auto",
                type=click.Choice(["auto", *MEMORY_PLANS]),
                help="How the model is kept on the card; auto: the catalogue's first plan whose expected "
                "peak fits this card.",
            ),
            click.option(
                "--compile/--no-compile",
                default=False,
                help="Compile the transformer's repeated blocks at load and warm up before ready.",
            ),
            click.option(
                "--compile-cache-dir",
                type=click.Path(path_type=Path, file_okay=False),
                default=None,
                help="Keep compiled kernels here (a volume: a restarted worker warms in seconds); "
                "default: CACHE_DIR/compile.",
            ),
            click.option(
                "--gpus",
                default=1,
                type=click.IntRange(1, 16),
                help="Devices this worker spans: it starts one process per extra rank (cuda:1, ...).",
            ),
            click.option(
                "--parallel",
                default="auto",
                type=click.Choice(["auto", "cfg", "ulysses", "ring"]),
                help="How --gpus splits a job: cfg (2 ranks: the guidance passes at once), ulysses or ring "
                "(context parallel, GPUs only); auto: cfg on 2, else ulysses.",
            ),
            click.option(
                "--max-batch",
                default=1,
                type=click.IntRange(1, 16),
                help="Run up to this many queued jobs of one size, frame count, step count and speed profile "
                "as one batch (Wan text-to-video); each keeps its own events, cancel and result.",
            ),
            click.option(
                "--attention-backend",
                default=None,
                help="diffusers' attention backend: native (SDPA), flash, _flash_3, sage, ...; "
                "checked at start (default: diffusers' native).",
            ),
            click.option(
                "--dtype", default="auto", type=click.Choice(["auto", "float32", "float16", "bfloat16"])
            ),
            click.option(
                "--drain-grace",
                default=60.0,
                type=click.FloatRange(min=0),
                help="Seconds to finish work on SIGTERM.",
            ),
            click.option(
                "--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"])
            ),
            click.option(
                "--log-format",
                default="text",
                type=click.Choice(["text", "json"]),
                help="json: one object a line.",
            ),
            click.option(
                "--trace-file",
                type=click.Path(path_type=Path, dir_okay=False),
                default=None,
                help="Trace jobs with OpenTelemetry; spans go here as JSON lines.",
            ),
            click.option(
                "--metrics-port",
                type=click.IntRange(1, 65535),
                default=None,
                help="Serve Prometheus /metrics here.",
            ),
        ]
    ):
        func = option(func)
    return func
