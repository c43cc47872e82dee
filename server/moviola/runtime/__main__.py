"""``python -m moviola.runtime serve|worker|simulated-worker [OPTIONS]``."""

import click

from moviola.runtime.commands import COMMANDS


@click.group(commands=COMMANDS)
def main() -> None:
    """Moviola's server processes."""


if __name__ == "__main__":
    main(prog_name="moviola")
