"""The studio's default notification: a Prefect notification block that writes each notification as one line.

The studio's automations (reelflow.cli.automations) send through a notification block. Without a webhook configured,
it is this one: each notification becomes one line in a file under the studio's REELFLOW_HOME (notifications.log) and
one warning in the Prefect server's own log (the journal, under systemd). The Prefect server runs the automations'
actions and loads the block's class by its slug: pyproject.toml lists this module under the `prefect.collections`
entry points, which Prefect imports in every server (and registers the block type at its start).

This module imports nothing of reelflow: Prefect imports it while it loads its collections.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from prefect._internal.compatibility.async_dispatch import async_dispatch
from prefect.blocks.abstract import NotificationBlock
from pydantic import Field

LOG_LINE_SLUG = "reelflow-log-line"


def one_line(subject: str | None, body: str) -> str:
    """The notification as one line: UTC time, subject, body, whitespace (newlines included) collapsed."""
    text = " ".join(f"{subject}: {body}".split()) if subject else " ".join(body.split())
    return f"{datetime.now(UTC).isoformat(timespec='seconds')} {text}"


class LogLineNotification(NotificationBlock):
    """Write each notification as one line to a file and to the Prefect server's log."""

    _block_type_name = "reelflow log line"
    _block_type_slug = LOG_LINE_SLUG
    _description = "Each notification as one line in a file (the studio's notifications.log) and in the server's log."

    path: str = Field(title="File", description="The file each notification is appended to, one line each.")

    def _write(self, body: str, subject: str | None) -> None:
        line = one_line(subject, body)
        self.logger.warning("%s", line)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(descriptor, f"{line}\n".encode())  # one write: lines of concurrent notifications never interleave
        finally:
            os.close(descriptor)

    async def anotify(self, body: str, subject: str | None = None) -> None:
        self._write(body, subject)

    @async_dispatch(anotify)
    def notify(self, body: str, subject: str | None = None) -> None:  # type: ignore[override]
        self._write(body, subject)
