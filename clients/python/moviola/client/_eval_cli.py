"""``moviola eval``: the evaluation harnesses (``moviola.eval``; the client's ``eval`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from moviola.client._cli_shared import server_option
from moviola.client._connect import connected


def _harness() -> Any:
    try:
        from moviola.eval import clips, folder, report, retrieval, service
    except ImportError as exc:
        raise click.ClickException(
            f"the evaluation harnesses need {exc.name}: pip install 'moviola-client[eval]'"
        ) from exc
    return clips, folder, report, retrieval, service


@click.group("eval")
def eval_group() -> None:
    """Evaluation harnesses: compare models on the same work."""


@eval_group.command()
@server_option
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("eval-retrieval"),
    show_default=True,
)
@click.option(
    "--model",
    "models",
    multiple=True,
    help="An embedding model to evaluate (repeat); default: every one served.",
)
@click.option(
    "--pooling", "poolings", multiple=True, type=click.Choice(["mean", "temporal"]), help="Default: both."
)
@click.option(
    "--frames", type=click.IntRange(1, 64), default=8, show_default=True, help="Frames sampled per clip."
)
@click.option(
    "--labels",
    type=click.IntRange(2, 90),
    default=24,
    show_default=True,
    help="Procedural set: distinct labels.",
)
@click.option(
    "--renderings",
    type=click.IntRange(1, 8),
    default=2,
    show_default=True,
    help="Procedural set: clips per label.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--clips",
    "clip_folder",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Your own clips...",
)
@click.option(
    "--captions",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="... and their file,caption[,group] CSV.",
)
def retrieval(
    server: str,
    out: Path,
    models: tuple[str, ...],
    poolings: tuple[str, ...],
    frames: int,
    labels: int,
    renderings: int,
    seed: int,
    clip_folder: Path | None,
    captions: Path | None,
) -> None:
    """Recall@1/5/10 and median rank, text-to-video and video-to-video, for every embedding model
    served and each pooling: on a procedural clip set with known answers (coloured shapes moving,
    captioned), or on your own clips (--clips DIR --captions CSV). Writes OUT/retrieval.csv, .md, .png."""
    from rich.console import Console

    clips, folder, report, harness, service = _harness()
    console = Console(stderr=True, highlight=False)
    if (clip_folder is None) != (captions is None):
        raise click.UsageError("--clips and --captions go together")
    with console.status("rendering the clip set") if clip_folder is None else console.status("reading clips"):
        try:
            clip_set = (
                clips.procedural(labels, renderings, seed)
                if clip_folder is None
                else folder.load(clip_folder, captions)
            )
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    console.print(f"{len(clip_set)} clips, {len({c.caption for c in clip_set})} captions")
    with connected(server) as client, console.status("embedding") as status:
        try:
            rows = harness.evaluate(
                service.ServerEmbeds(client, frames),
                clip_set,
                models=models,
                poolings=poolings or ("mean", "temporal"),
                progress=lambda what: status.update(f"embedding: {what}"),
            )
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    written = report.write(rows, out)
    click.echo(written[1].read_text(), nl=False)  # the Markdown table, as written
    console.print("wrote " + ", ".join(str(p) for p in written))


@eval_group.command("models")
@server_option
@click.option(
    "--out", type=click.Path(path_type=Path, file_okay=False), default=Path("eval-models"), show_default=True
)
@click.option(
    "--model", "models", multiple=True, help="A model to evaluate (repeat); default: every one served."
)
@click.option(
    "--prompts",
    "prompt_count",
    type=click.IntRange(1, 12),
    default=12,
    show_default=True,
    help="The first N bundled prompts.",
)
@click.option("--seed", type=int, default=42, show_default=True, help="Every job's seed.")
@click.option("--width", type=int, default=None, help="Every job's size (default: each model's).")
@click.option("--height", type=int, default=None)
@click.option("--frames", "num_frames", type=int, default=None)
@click.option("--steps", "num_inference_steps", type=int, default=None)
@click.option(
    "--text-model",
    default="",
    help="Embedding model for text-video similarity (default: the server's for text).",
)
@click.option(
    "--frame-model", default="", help="Embedding model for temporal consistency (default: an image-only one)."
)
def models_command(
    server: str,
    out: Path,
    models: tuple[str, ...],
    prompt_count: int,
    seed: int,
    text_model: str,
    frame_model: str,
    **sizes: int | None,
) -> None:
    """Run the bundled prompts through every model served (or those named) with fixed seeds, and report
    seconds per step, total seconds, peak memory and quality proxies (through Embed) per model: OUT/models.csv,
    .md, .png and contact-sheet.png. Resumable: a rerun skips the cells OUT/cells.jsonl has."""
    from rich.console import Console
    from rich.progress import Progress

    _harness()
    from moviola.eval import models as harness
    from moviola.eval import models_report
    from moviola.eval.prompts import PROMPTS

    prompts = dict(list(PROMPTS.items())[:prompt_count])
    options: Any = {k: v for k, v in sizes.items() if v is not None}
    with connected(server) as client:
        infos = client.list_models()
        served = [m.id for m in infos]
        unknown = sorted(set(models) - set(served))
        if unknown:
            raise click.ClickException(f"not served here: {', '.join(unknown)} (served: {', '.join(served)})")
        from moviola.v1 import generation_pb2 as gen

        # The prompts are text: models that need an input image are left out unless named.
        text_models = [m.id for m in infos if m.image_input != gen.IMAGE_INPUT_REQUIRED]
        embedding = client.list_embedding_models()
        text_model = text_model or next((m.id for m in embedding if m.default_for_text), "")
        frame_model = frame_model or next(
            (m.id for m in embedding if m.accepts_images and not m.accepts_text),
            next((m.id for m in embedding if m.default_for_images), ""),
        )
        if not text_model or not frame_model:
            raise click.ClickException("the server serves no embedding models for the quality proxies")
        chosen = list(models) or text_models
        run = harness.Harness(
            client, out, text_model=text_model, frame_model=frame_model, seed=seed, options=options
        )
        with Progress(console=Console(stderr=True)) as progress:
            task = progress.add_task("generating", total=len(chosen) * len(prompts))
            cells = harness.evaluate(
                run,
                chosen,
                prompts,
                out / "cells.jsonl",
                lambda what: progress.update(task, advance=1, description=what),
            )
    written = models_report.write(cells, out)
    click.echo(written[1].read_text(), nl=False)  # the Markdown table, as written
    Console(stderr=True).print("wrote " + ", ".join(str(p) for p in written))
