"""Command-line options the serving commands share: durations, options of settings, and the model options
of ``serve`` and ``worker``.

An option of a setting (``setting("--lease", ...)``) is unset (None) unless given, so that the settings'
default applies; its help shows that default (``settings.default_of``) and its choices are ``settings.CHOICES``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from moviola.settings import CHOICES, default_of

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

    @staticmethod
    def text(seconds: float) -> str:
        """``3600`` as ``1h``: in the largest unit it is a whole number of."""
        unit, size = next(((u, n) for u, n in reversed(_UNITS.items()) if seconds % n == 0), ("s", 1))
        return f"{seconds / size:g}{unit}"


class SettingOption(click.Option):
    """An option that sets the setting of its name (``Settings.of``): None unless given, its default shown."""

    def __init__(self, *args: Any, **attrs: Any) -> None:
        super().__init__(*args, default=None, **attrs)
        if self.name in CHOICES:
            self.type = click.Choice(CHOICES[self.name])

    def shown_default(self) -> str | None:
        """The settings' default as ``--help`` writes it; None where there is nothing to write."""
        value = default_of(str(self.name))
        if value is None or value == () or (value is False and not self.secondary_opts):
            return None
        if isinstance(value, bool):
            return (self.opts if value else self.secondary_opts)[0].lstrip("-")
        if isinstance(self.type, Duration):
            return Duration.text(value)
        return str(value)

    def get_help_extra(self, ctx: click.Context) -> click.types.OptionHelpExtra:
        extra = super().get_help_extra(ctx)
        shown = self.shown_default()
        if shown is not None and (self.show_default if self.show_default is not None else ctx.show_default):
            extra["default"] = shown
        return extra


def setting(*names: str, **attrs: Any) -> Callable[[F], F]:
    """``click.option`` for the setting of its name (``SettingOption``); no ``default``."""
    return click.option(*names, cls=SettingOption, **attrs)


def model_options(func: F) -> F:
    for option in reversed(
        [
            setting("--model", help="Model id from the catalogue (`moviola models`)."),
            setting(
                "--catalog",
                type=click.Path(path_type=Path, exists=True, dir_okay=False),
                help="Catalogue file (default: the one shipped with Moviola).",
            ),
            setting("--model-path", help="Local folder or hub id of the model's diffusers weights."),
            setting("--data-dir", type=click.Path(path_type=Path), help="Where videos are stored."),
            setting(
                "--storage-url",
                help="Where videos go: file:///PATH or s3://BUCKET/PREFIX (AWS credentials and "
                "AWS_ENDPOINT_URL_S3 from the standard chain). Default: DATA_DIR/videos.",
            ),
            setting("--url-ttl", type=Duration(), help="How long a download link (presigned S3 URL) works."),
            setting(
                "--retention",
                "video_retention",
                type=Duration(),
                help="Delete a job's video and poster this long after it completed (e.g. 7d); its record "
                "(GetJob, ListJobs) stays at least as long. Default: keep the files.",
            ),
            setting(
                "--store-timeout",
                type=Duration(),
                help="Seconds storing a video is retried while the storage is unreachable before the job fails.",
            ),
            setting("--cache-dir", type=click.Path(path_type=Path), help="Where tiny models are built."),
            setting("--device", help="auto, cpu, cuda or cuda:N."),
            setting(
                "--speed-profile",
                help="Requests that name no speed profile run with this one (fast: a step cache; turbo: the "
                "model's step-distilled adapter, its steps, no guidance).",
            ),
            setting(
                "--quantize",
                help="The transformers' weights: int8 or fp8 weight-only, fp8-dynamic (float8 matmuls, compute "
                "capability 8.9+); auto: the memory plan's (catalogue). Checked before ready.",
            ),
            setting(
                "--lora",
                "lora",
                multiple=True,
                metavar="NAME=SOURCE",
                help="Register a LoRA adapter of the served model's family (repeatable); SOURCE: a "
                ".safetensors file, a folder, s3://BUCKET/KEY or a hub id. Callers name it in loras.",
            ),
            setting(
                "--lora-dir",
                "lora_dir",
                multiple=True,
                help="Register every .safetensors file and folder in this folder, or under s3://BUCKET/PREFIX/, "
                "as an adapter (repeatable).",
            ),
            setting(
                "--lora-catalog",
                type=click.Path(path_type=Path, dir_okay=False, exists=True),
                help="A TOML file of [[adapter]] entries: name, source, base, description, license, "
                "trigger_words, high_noise/low_noise (docs/models.md).",
            ),
            setting(
                "--lora-cache",
                type=click.IntRange(1, 256),
                help="LoRA adapters a worker keeps loaded (least recently used ones are unloaded).",
            ),
            setting(
                "--fuse-lora/--no-fuse-lora",
                help="Fuse the active adapters into the weights (for a worker serving one adapter set all day).",
            ),
            setting(
                "--memory-plan",
                help="How the model is kept on the card; auto: the catalogue's first plan whose expected "
                "peak fits this card.",
            ),
            setting(
                "--compile/--no-compile",
                help="Compile the transformer's repeated blocks at load and warm up before ready.",
            ),
            setting(
                "--compile-cache-dir",
                type=click.Path(path_type=Path, file_okay=False),
                help="Keep compiled kernels here (a volume: a restarted worker warms in seconds); "
                "default: CACHE_DIR/compile.",
            ),
            setting(
                "--gpus",
                type=click.IntRange(1, 16),
                help="Devices this worker spans: it starts one process per extra rank (cuda:1, ...).",
            ),
            setting(
                "--parallel",
                help="How --gpus splits a job: cfg (2 ranks: the guidance passes at once), ulysses or ring "
                "(context parallel, GPUs only); auto: cfg on 2, else ulysses.",
            ),
            setting(
                "--max-batch",
                type=click.IntRange(1, 16),
                help="Run up to this many queued jobs of one size, frame count, step count and speed profile "
                "as one batch (Wan text-to-video); each keeps its own events, cancel and result.",
            ),
            setting(
                "--attention-backend",
                help="diffusers' attention backend: native (SDPA), flash, _flash_3, sage, ...; "
                "checked at start (default: diffusers' native).",
            ),
            setting("--dtype"),
            setting("--drain-grace", type=click.FloatRange(min=0), help="Seconds to finish work on SIGTERM."),
            click.option(
                "--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"])
            ),
            click.option(
                "--log-format",
                default="text",
                type=click.Choice(["text", "json"]),
                help="json: one object a line.",
            ),
            setting(
                "--trace-file",
                type=click.Path(path_type=Path, dir_okay=False),
                help="Trace jobs with OpenTelemetry; spans go here as JSON lines.",
            ),
            setting("--metrics-port", type=click.IntRange(1, 65535), help="Serve Prometheus /metrics here."),
            setting(
                "--metrics-host",
                help="Address /metrics listens on (default: --host on a server or gateway, 127.0.0.1 on a "
                "worker; 0.0.0.0 lets Prometheus in a cluster scrape it).",
            ),
        ]
    ):
        func = option(func)
    return func
