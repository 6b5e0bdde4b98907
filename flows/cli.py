"""The `reelflow` command: validate projects, render episodes, run the local Prefect server.

The only module that prints. Prefect is imported after the server is chosen, and its console
logging is kept for warnings the user must see; every log still reaches the Prefect UI.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from reelflow.flows import server
from reelflow.schemas.errors import ReelflowError
from reelflow.schemas.load import load_project, load_storyboard, validate_folder

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="reelflow: storyboards in, rendered episodes out.")
server_app = typer.Typer(no_args_is_help=True, help="The local Prefect server that records every run.")
app.add_typer(server_app, name="server")
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

STATUS_STYLE = {"running": "yellow", "cached": "blue", "done": "green", "failed": "red", "waiting": "dim"}


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print each line of a one-line-per-problem error to stderr and exit non-zero."""
    for line in message.splitlines():
        typer.echo(f"error: {line}", err=True)
    return typer.Exit(code)


def parse_shots(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        numbers = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise fail(f"--shots: {text!r} must be shot numbers separated by commas, e.g. 3,7") from None
    if not numbers:
        raise fail("--shots: give at least one shot number")
    return numbers


@app.command()
def validate(project: Annotated[Path, typer.Argument(help="Project folder")]) -> None:
    """Check project.json, breakdown.json and every storyboard against the contracts; renders nothing."""
    try:
        checked, problems = validate_folder(project)
    except ReelflowError as exc:
        raise fail(str(exc)) from None
    if problems:
        raise fail("\n".join(problems))
    out.print(f"[green]ok[/green] {project}: project, breakdown and {checked} storyboard(s) are valid")


class ProgressView:
    """A live table of shots and their current stage, fed by stage events."""

    def __init__(self, rows: dict[int, str]) -> None:
        self.rows = {shot: {"approach": approach, "stage": "", "status": "waiting"} for shot, approach in rows.items()}
        self.lock = threading.Lock()
        self.live: Live | None = None

    def table(self) -> Table:
        table = Table(title="render", expand=False)
        for column in ("shot", "approach", "stage", "status"):
            table.add_column(column)
        for shot, row in self.rows.items():
            style = STATUS_STYLE.get(row["status"], "")
            table.add_row(str(shot), row["approach"], row["stage"], f"[{style}]{row['status']}[/{style}]")
        return table

    def __call__(self, event: Any) -> None:
        with self.lock:
            row = self.rows.get(event.shot)
            if row is None:
                return
            row["stage"], row["status"] = event.stage, event.status
            if self.live is not None:
                self.live.update(self.table())


def summary_table(report: Any) -> Table:
    table = Table(title=f"episode {report.episode:03d}")
    for column in ("shot", "approach", "status", "calls", "cost", "note"):
        table.add_column(column)
    for line in report.lines:
        style = {"rendered": "green", "cached": "blue", "failed": "red"}[line.status]
        note = f"{line.stage}: {line.reason}" if line.reason else ""
        table.add_row(str(line.shot), line.approach, f"[{style}]{line.status}[/{style}]",
                      str(line.provider_calls), f"${line.cost_usd:.3f}", note)
    return table


@app.command()
def render(
    project: Annotated[Path, typer.Argument(help="Project folder")],
    episode: Annotated[int, typer.Option("--episode", "-e", help="Episode number")],
    shots: Annotated[str | None, typer.Option("--shots", help="Only these shots, e.g. 3,7")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object and nothing else on stdout")] = False,
) -> None:
    """Render an episode: keyframes, upscale, video and clip per shot, then the cut and the manifest."""
    numbers = parse_shots(shots)
    project = project.resolve()
    try:
        folder = load_project(project)
        storyboard = load_storyboard(folder, episode)
        unknown = sorted(set(numbers or []) - {s.shot for s in storyboard.shots})
        if unknown:
            raise fail(f"{folder.storyboard_path(episode).name}: --shots: shot {unknown[0]} is not in the storyboard")
        api_url = server.connect()
    except ReelflowError as exc:
        raise fail(str(exc)) from None
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")

    from reelflow.flows.render import render_episode
    from reelflow.tasks.events import subscribe

    selected = {s.shot: s.generation_approach.value for s in storyboard.shots if not numbers or s.shot in numbers}
    view = ProgressView(selected)
    unsubscribe = subscribe(view)
    try:
        if as_json:
            state = render_episode(str(project), episode, numbers, return_state=True)
        else:
            with Live(view.table(), console=err, refresh_per_second=8, transient=True) as live:
                view.live = live
                state = render_episode(str(project), episode, numbers, return_state=True)
        report = state.result(raise_on_failure=False)
    except ReelflowError as exc:
        raise fail(str(exc)) from None
    finally:
        unsubscribe()
    if isinstance(report, BaseException):
        raise fail(f"render failed: {' '.join(str(report).split()) or type(report).__name__}", code=1)
    ui = api_url.removesuffix("/api")
    if as_json:
        typer.echo(json.dumps(report.summary()))
    else:
        out.print(summary_table(report))
        cut = report.output or report.cut_skipped
        out.print(f"cut: {cut}\nmanifest: {report.manifest}\n"
                  f"shots: {report.shots.rendered} rendered, {report.shots.cached} cached, {report.shots.failed} failed"
                  f" · provider calls {report.provider_calls} · cost ${report.cost_usd:.3f}")
        flow_run_id = state.state_details.flow_run_id
        out.print(f"run in the Prefect UI: {ui}/runs/flow-run/{flow_run_id}")
    if report.shots.failed:
        raise typer.Exit(1)


@server_app.command("start")
def server_start() -> None:
    """Start the local Prefect server (or find the running one) and print the UI address."""
    try:
        info = server.start_server()
    except ReelflowError as exc:
        raise fail(str(exc), code=1) from None
    out.print(f"Prefect UI: {info.url}")


@server_app.command("stop")
def server_stop() -> None:
    """Stop the local Prefect server this machine's reelflow started."""
    out.print("stopped" if server.stop_server() else "no server was running")


@server_app.command("status")
def server_status() -> None:
    """Say whether the local Prefect server is running, and where."""
    info = server.running_server()
    if info is None:
        out.print("not running (reelflow render starts it)")
        raise typer.Exit(1)
    out.print(f"running: {info.url} (pid {info.pid})")


def main() -> None:
    app(prog_name="reelflow")


if __name__ == "__main__":
    sys.exit(main())
