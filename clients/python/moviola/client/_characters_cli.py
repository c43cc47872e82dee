"""``moviola characters``: create, get and delete the reference images a request's ``character_id`` names."""

from __future__ import annotations

from pathlib import Path

import click

from moviola.client._cli_shared import server_option
from moviola.client._connect import connected
from moviola.v1 import generation_pb2 as gen


def _line(character: gen.Character) -> str:
    return f"{character.id}  {character.name}  {character.width}x{character.height}"


@click.group()
def characters() -> None:
    """Reference images, taken from a video, that image-to-video requests name (--character)."""


@characters.command("create")
@click.argument("name")
@click.option("--video", type=click.Path(path_type=Path, exists=True, dir_okay=False), required=True)
@server_option
def characters_create(name: str, video: Path, server: str) -> None:
    """Store a character NAME from a video file (MP4, MOV, WebM)."""
    with connected(server) as client:
        click.echo(_line(client.create_character(name, video.read_bytes())))


@characters.command("get")
@click.argument("character_id")
@server_option
def characters_get(character_id: str, server: str) -> None:
    """Show one of your characters."""
    with connected(server) as client:
        click.echo(_line(client.get_character(character_id)))


@characters.command("delete")
@click.argument("character_id")
@server_option
def characters_delete(character_id: str, server: str) -> None:
    """Delete one of your characters and its image."""
    with connected(server) as client:
        click.echo(f"deleted {_line(client.delete_character(character_id))}")
