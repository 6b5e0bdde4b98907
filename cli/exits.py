"""How every command fails: one `error: …` line per problem on stderr, and a non-zero exit."""

from __future__ import annotations

import typer


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print each line of a one-line-per-problem error to stderr and exit non-zero (2: bad input, 1: it failed)."""
    for line in message.splitlines():
        typer.echo(f"error: {line}", err=True)
    return typer.Exit(code)
