"""``moviola search``: find generated videos by meaning (the server's ``--search-index``).

moviola search "a red fox in snow" --since 7d
moviola search --like JOB_ID --model wan2.2-t2v-a14b
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from moviola.client._cli_shared import server_option
from moviola.client._connect import connected
from moviola.v1 import search_pb2 as search

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")


def moment(value: str | None, now: float) -> float | None:
    """``7d`` (that long ago) or an ISO date/time, as Unix seconds.

    >>> moment("2d", 200000.0)
    27200.0
    >>> moment("1970-01-02T00:00:00+00:00", 0.0)
    86400.0
    """
    if value is None:
        return None
    ago = _AGO.match(value)
    if ago:
        return now - float(ago.group(1)) * _UNITS[ago.group(2)]
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise click.BadParameter(f"{value!r}: a duration ago (30m, 12h, 7d, 2w) or an ISO date") from None


def hits_table(response: search.SearchVideosResponse) -> Table:
    table = Table(title=f"embedded with {response.embedding_model}" if response.embedding_model else None)
    for header in ("job", "score", "matched", "model", "created", "prompt"):
        table.add_column(header, no_wrap=header == "job")
    for hit in response.hits:
        created = datetime.fromtimestamp(hit.create_time.ToNanoseconds() / 1e9).strftime("%Y-%m-%d %H:%M")
        table.add_row(
            Text(hit.job_id), f"{hit.score:.3f}", hit.matched, Text(hit.model), created, Text(hit.prompt)
        )
    return table


@click.command("search")
@click.argument("text", required=False)
@click.option(
    "--image", type=click.Path(path_type=Path, exists=True, dir_okay=False), help="Videos like this image."
)
@click.option(
    "--video", type=click.Path(path_type=Path, exists=True, dir_okay=False), help="Videos like this video."
)
@click.option("--like", "job_id", default=None, help="Videos like this job's video.")
@click.option("--top-k", type=click.IntRange(1, 100), default=10, help="How many to show.")
@click.option("--model", "models", multiple=True, help="Only videos of this generation model (repeatable).")
@click.option("--since", default=None, help="Only jobs accepted since: 30m, 12h, 7d, 2w ago, or an ISO date.")
@click.option("--until", default=None, help="Only jobs accepted before: as --since.")
@click.option("--json", "json_out", is_flag=True, help="One JSON object per hit.")
@server_option
def search_command(
    text: str | None,
    image: Path | None,
    video: Path | None,
    job_id: str | None,
    top_k: int,
    models: tuple[str, ...],
    since: str | None,
    until: str | None,
    json_out: bool,
    server: str,
) -> None:
    """Find your generated videos by what they show: TEXT, or --image, --video or --like JOB."""
    queries: dict[str, str | bytes | float | None] = {
        "text": text,
        "image": image.read_bytes() if image else None,
        "video": video.read_bytes() if video else None,
        "job_id": job_id,
    }
    given = {k: v for k, v in queries.items() if v is not None}
    if len(given) != 1:
        raise click.UsageError("give exactly one of TEXT, --image, --video or --like")
    now = time.time()
    times = {"created_after": moment(since, now), "created_before": moment(until, now)}
    given.update({k: v for k, v in times.items() if v is not None})
    with connected(server) as client:
        response = client.search_videos(**given, top_k=top_k, models=models)  # type: ignore[arg-type]
    if json_out:
        from google.protobuf import json_format

        for hit in response.hits:
            click.echo(json_format.MessageToJson(hit, indent=None))
        return
    if not response.hits:
        click.echo("no videos found", err=True)
        return
    Console(highlight=False).print(hits_table(response))
