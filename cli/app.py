"""The `reelflow` command: validate projects, render episodes, run the local Prefect server.

The only module that prints. Prefect is imported after the server is chosen, and its console
logging is kept for warnings the user must see; every log still reaches the Prefect UI.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import nullcontext
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from reelflow.cli import server
from reelflow.cli.characters import candidates, pick, train
from reelflow.cli.exits import fail
from reelflow.cli.gpu import gpu_app
from reelflow.cli.live import shots_to_render, showing
from reelflow.cli.push import push_event
from reelflow.cli.studio import studio_app
from reelflow.providers.registry import require_providers
from reelflow.schemas.dailies import Dailies, Decision, decisions_from
from reelflow.schemas.errors import ContractError, ReelflowError
from reelflow.schemas.load import (
    key_notes,
    load_episode,
    load_project,
    load_storyboard,
    load_storyboard_file,
    validate_folder,
)
from reelflow.schemas.names import shot_digits_for
from reelflow.schemas.project import RENDER_STAGES
from reelflow.schemas.report import BudgetLine, RenderReport, money_words
from reelflow.schemas.storyboard import Storyboard
from reelflow.state.dailies import apply_decisions, read_dailies

if TYPE_CHECKING:
    from prefect import Flow
    from prefect.client.schemas.objects import FlowRun
    from prefect.states import State

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="reelflow: storyboards in, rendered episodes out.")
server_app = typer.Typer(no_args_is_help=True, help="The local Prefect server that records every run.")
app.add_typer(server_app, name="server")
app.add_typer(studio_app, name="studio")
app.add_typer(gpu_app, name="gpu")
app.command("push-event")(push_event)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def parse_shots(text: str | None, option: str = "--shots") -> list[int] | None:
    """The shot numbers an option lists, e.g. `3,7` (None when the option is not given)."""
    if text is None:
        return None
    try:
        numbers = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise fail(f"{option}: {text!r} must be shot numbers separated by commas, e.g. 3,7") from None
    if not numbers:
        raise fail(f"{option}: give at least one shot number")
    return numbers


def shot_plans(project: Path) -> list[dict[str, Any]]:
    """How each shot of each storyboard will be made (its video plan, schemas/segments.py), with its one-line
    summary: `storyboard_ep_001.json: S03 standard_flf 4.0 s: 1 segment of 65 frames @16 fps`."""
    folder = load_project(project)
    shots = []
    for path in folder.storyboard_paths():
        storyboard = load_storyboard_file(folder, path)
        digits = shot_digits_for(len(storyboard.shots))
        for shot in sorted(storyboard.shots, key=lambda shot: shot.shot):
            plan = shot.video_plan
            label = f"{path.name}: S{shot.shot:0{digits}d}"
            shots.append({"storyboard": path.name, "episode": storyboard.episode, "shot": shot.shot,
                          "approach": shot.generation_approach.value, "duration_s": shot.duration_s,
                          "keyframes": list(shot.keyframe_roles), "video": plan.as_json(),
                          "line": plan.summary(label, shot.generation_approach.value)})
    return shots


@app.command()
def validate(project: Annotated[Path, typer.Argument(help="Project folder")], as_json: JsonOpt = False) -> None:
    """Check project.json, breakdown.json and every storyboard against the contracts; renders nothing.

    Keys the contracts do not know are kept and listed as notes; one that nearly spells a field is an error. Each
    shot then says how its video will be made: its segments' frames at the video model's rate, consecutive
    segments and their intermediate keyframes, frames trimmed.
    """
    try:
        checked, problems = validate_folder(project)
    except ReelflowError as exc:
        raise fail(str(exc)) from None
    notes = key_notes(project)
    if not as_json:
        for note in notes:
            out.print(f"note: {note}", markup=False)
    if problems:
        raise fail("\n".join(problems))
    try:
        shots = shot_plans(project)
    except ReelflowError as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps({"valid": True, "storyboards": checked, "notes": notes, "shots": shots}))
        return
    for shot in shots:
        out.print(shot["line"], markup=False)
    out.print(f"[green]ok[/green] {project}: project, breakdown and {checked} storyboard(s) are valid")


def summary_table(report: Any) -> Table:
    table = Table(title=f"episode {report.episode:03d}")
    for column in ("shot", "take", "approach", "status", "gates", "calls", "cost", "note"):
        table.add_column(column)
    for line in report.lines:
        style = {"rendered": "green", "cached": "blue", "kept": "magenta", "failed": "red",
                 "upgraded_kept": "yellow"}[line.status]
        note = f"{line.stage}: {line.reason}" if line.stage and line.reason else line.reason or ""
        table.add_row(str(line.shot), f"T{line.take:02d}", line.approach, f"[{style}]{line.status}[/{style}]",
                      line.review or "", str(line.provider_calls), f"${line.cost_usd:.3f}", note)
    return table


def budget_text(budget: BudgetLine) -> str:
    """Charged in this run and in the project, what remains under the caps, and where the shadow cost would have
    stopped the run."""
    remaining = "no cap" if budget.remaining_usd is None else f"${budget.remaining_usd:.3f} left"
    line = f"spent: ${budget.spent_run_usd:.3f} this run · ${budget.spent_project_usd:.3f} in the project · {remaining}"
    return line if budget.shadow_stop is None else f"{line}\n{budget.shadow_stop}"


ProjectArg = Annotated[Path, typer.Argument(help="Project folder")]
EpisodeOpt = Annotated[int, typer.Option("--episode", "-e", help="Episode number")]
ShotsOpt = Annotated[str | None, typer.Option("--shots", help="Only these shots, e.g. 3,7")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object and nothing else on stdout")]


class Until(StrEnum):
    """Where `render --until` stops every shot."""

    keyframes = "keyframes"


RetakesOpt = Annotated[bool, typer.Option("--retakes", help="Only the shots the dailies mark retake, each as take T+1")]


def checked_episode(
    project: Path, episode: int, numbers: list[int] | None, stages: tuple[str, ...] = RENDER_STAGES
) -> Storyboard:
    """Validate the project and storyboard and set up the providers its stages need, before any work."""
    folder, storyboard = load_episode(project, episode)
    unknown = sorted(set(numbers or []) - {s.shot for s in storyboard.shots})
    if unknown:
        raise ContractError(f"{folder.storyboard_path(episode).name}: --shots: shot {unknown[0]} is not in the storyboard")
    require_providers(folder.project, stages)
    return storyboard


def print_report(report: RenderReport) -> None:
    """A render's report as people read it: the shot table, the cut, counts, money, and what was kept and why."""
    out.print(summary_table(report))
    cut = report.output or report.cut_skipped
    out.print(f"cut: {cut}\nmanifest: {report.manifest}\n"
              f"shots: {report.shots.rendered} rendered, {report.shots.cached} cached, {report.shots.kept} kept, "
              f"{report.shots.failed} failed" + (f", {report.shots.held} held for keyframe review" if report.shots.held else "") +
              f" · provider calls {report.provider_calls} · {money_words(report.charged_usd, report.shadow_usd)}\n"
              f"{budget_text(report.budget)}", markup=False)
    if report.shots.held:
        held = [line.shot for line in report.lines if line.status == "keyframes_review"]
        out.print(f"held: shots {', '.join(map(str, held))} wait for keyframe review; their upscale and video "
                  f"(${report.held_usd:.3f}) are made once you approve them: reelflow dailies PROJECT --episode "
                  f"{report.episode} --approve-keyframes {','.join(map(str, held))}", markup=False)
    if report.stale_shots:
        out.print(f"stale: shots {', '.join(map(str, report.stale_shots))} are cut from clips of an older storyboard",
                  markup=False)
    for line in report.decisions_kept:
        out.print(f"kept: {line}", markup=False)
    if report.upgraded_kept:
        cost = sum(shot.cost_usd for shot in report.upgraded_kept)
        out.print(f"kept {len(report.upgraded_kept)} shot(s) made by an older reelflow from the inputs they have "
                  f"now (shots {', '.join(str(shot.shot) for shot in report.upgraded_kept)}): ${cost:.3f} to make "
                  "again with --rerender-upgraded", markup=False)


def quiet_prefect_console() -> None:
    """Prefect's console logs stay out of the way of ours; every log still reaches the Prefect UI."""
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")


@app.command()
def estimate(
    project: ProjectArg, episode: EpisodeOpt, shots: ShotsOpt = None, retakes: RetakesOpt = False, as_json: JsonOpt = False
) -> None:
    """What a render would submit now, per stage and in total; cached work costs nothing."""
    numbers = parse_shots(shots)
    quiet_prefect_console()
    try:
        checked_episode(project, episode, numbers)
        from reelflow.flows.estimate import estimate_episode

        result = estimate_episode(project, episode, numbers, retakes)
    except ReelflowError as exc:
        raise fail(str(exc)) from None
    if as_json:
        blocked = [shot.model_dump() for shot in result.blocked]
        upgraded = [shot.model_dump() for shot in result.upgraded]
        typer.echo(json.dumps({"total_usd": result.total_usd, "by_stage": result.by_stage, "blocked": blocked,
                               "upgraded": upgraded, "upgraded_usd": result.upgraded_usd, "upgrades": result.upgrades,
                               "held": [shot.model_dump() for shot in result.held], "held_usd": result.held_usd}))
        return
    table = Table(title=f"estimate: episode {episode:03d}")
    for column in ("stage", "calls", "cost"):
        table.add_column(column)
    for stage, cost in result.by_stage.items():
        table.add_row(stage, str(result.calls_by_stage[stage]), f"${cost:.3f}")
    table.add_row("total", str(sum(result.calls_by_stage.values())), f"${result.total_usd:.3f}")
    out.print(table)
    if "local" in {load_project(project).project.stage(stage).use for stage in RENDER_STAGES}:
        out.print("local stages are priced at their shadow cost (what the cloud would charge): nothing is charged")
    for shot in result.blocked:
        out.print(f"blocked: shot {shot.shot}: {shot.reason}", markup=False)
    for held in result.held:
        out.print(f"held: shot {held.shot} T{held.take:02d}: keyframes wait for review; their upscale and video cost "
                  f"${held.cost_usd:.3f} once approved (not in the total)", markup=False)
    for upgraded in result.upgraded:
        out.print(f"upgraded: shot {upgraded.shot} T{upgraded.take:02d}: {'; '.join(upgraded.reasons)} · "
                  f"making it again costs ${upgraded.cost_usd:.3f}", markup=False)
    if result.upgraded:
        what = ("a render keeps their takes (render --rerender-upgraded, or \"upgrades\": \"rerender\" in project.json, "
                "makes them again)" if result.upgrades == "keep" else "the total makes them again (\"upgrades\": \"rerender\")")
        out.print(f"{len(result.upgraded)} shot(s) made by an older reelflow from the inputs they have now, "
                  f"${result.upgraded_usd:.3f} to make again: {what}", markup=False)


@app.command()
def render(
    project: ProjectArg,
    episode: EpisodeOpt,
    shots: ShotsOpt = None,
    retakes: RetakesOpt = False,
    as_json: JsonOpt = False,
    max_cost: Annotated[float | None, typer.Option("--max-cost", min=0, help="Submit nothing past this many USD")] = None,
    allow_stale: Annotated[bool, typer.Option(
        "--allow-stale", help="Let the cut use clips made from an older storyboard; the report lists them")] = False,
    rerender_upgraded: Annotated[bool, typer.Option(
        "--rerender-upgraded", help="Make again the shots only an upgrade of reelflow changed (kept by default)")] = False,
    until: Annotated[Until | None, typer.Option(
        "--until", help="Stop every shot after this stage: keyframes (gated) wait for review before video money")] = None,
) -> None:
    """Render an episode: keyframes, gates, upscale, video and clip per shot, then the cut and the manifest.

    Shots whose keyframes need review (project.json "review": {"keyframes": ...}) stop after their gates until the
    frames are approved (reelflow dailies --approve-keyframes); --until keyframes stops every shot there.

    Approved shots are kept as they are; shots marked retake in the dailies render as take T+1. Shots whose own
    inputs did not change but which an upgrade of reelflow would make again keep their takes (--rerender-upgraded).
    Progress goes to stderr: a live table on a terminal, else one line per finished shot (nothing with --json).
    Ctrl-C cancels the render's provider requests, settles each in the ledger, and exits 130.
    """
    numbers = parse_shots(shots)
    project = project.resolve()
    try:
        storyboard = checked_episode(project, episode, numbers)
        rendering = shots_to_render(load_project(project), storyboard, numbers, retakes)
        local = not os.environ.get("PREFECT_API_URL")
        api_url = server.connect()
    except ReelflowError as exc:
        raise fail(str(exc)) from None
    quiet_prefect_console()

    from reelflow.cli.stopping import stopping_on_ctrl_c
    from reelflow.flows.render import render_episode

    ui = api_url.removesuffix("/api")
    if not as_json:  # --json: stdout is its one object, and stderr only says what went wrong
        out.print(f"Prefect UI: {ui}" + ("  (reelflow's local server: it keeps running after the render; "
                                         "reelflow server stop stops it)" if local else ""), markup=False)
    try:
        with stopping_on_ctrl_c(render_episode if as_json else announcing(render_episode, ui, out), err) as run, \
                nullcontext() if as_json else showing(rendering, err):
            state = run(str(project), episode, numbers, max_cost, retakes, allow_stale=allow_stale,
                        rerender_upgraded=rerender_upgraded, until=until.value if until else None, return_state=True)
        report = state.result(raise_on_failure=False)
    except ReelflowError as exc:
        raise fail(str(exc)) from None
    if isinstance(report, ContractError):
        raise fail(str(report))
    if isinstance(report, BaseException):
        raise fail(f"render failed: {' '.join(str(report).split()) or type(report).__name__}", code=1)
    if as_json:
        typer.echo(json.dumps(report.summary()))
    else:
        print_report(report)
        flow_run_id = state.state_details.flow_run_id
        out.print(f"run in the Prefect UI: {ui}/runs/flow-run/{flow_run_id}")
    if report.budget.stopped:
        typer.echo(f"error: {report.budget.stopped}", err=True)
    if report.shots.failed:
        raise typer.Exit(1)


def announcing(flow: Flow[..., Any], ui: str, console: Console) -> Flow[..., Any]:
    """`flow`, printing its run's page in the Prefect UI at `ui` on `console` as soon as the run starts."""

    def announce(running: Flow[..., Any], flow_run: FlowRun, state: State) -> None:
        console.print(f"run in the Prefect UI: {ui}/runs/flow-run/{flow_run.id}", markup=False)

    return flow.with_options(on_running=[*flow.on_running_hooks, announce])


@app.command()
def previz(project: ProjectArg, episode: EpisodeOpt, shots: ShotsOpt = None, as_json: JsonOpt = False) -> None:
    """One cheap hero frame per shot and an HTML contact sheet to review them, before any render spend."""
    numbers = parse_shots(shots)
    project = project.resolve()
    try:
        checked_episode(project, episode, numbers, stages=("previz",))
        api_url = server.connect()
    except ReelflowError as exc:
        raise fail(str(exc)) from None
    quiet_prefect_console()

    from reelflow.flows.previz import previz_episode

    try:
        state = previz_episode(str(project), episode, numbers, return_state=True)
        report = state.result(raise_on_failure=False)
    except ReelflowError as exc:
        raise fail(str(exc)) from None
    if isinstance(report, BaseException):
        raise fail(f"previz failed: {' '.join(str(report).split()) or type(report).__name__}", code=1)
    if as_json:
        typer.echo(json.dumps(report.model_dump()))
    else:
        for failure in report.failed:
            err.print(f"shot {failure.shot} failed: {failure.reason}", style="red", markup=False)
        out.print(f"review: {report.html}\nmanifest: {report.manifest}\n"
                  f"frames: {report.frames} made, {len(report.failed)} failed"
                  f" · provider calls {report.provider_calls} · {money_words(report.charged_usd, report.shadow_usd)}")
        ui = api_url.removesuffix("/api")
        out.print(f"run in the Prefect UI: {ui}/runs/flow-run/{state.state_details.flow_run_id}")
    if report.failed:
        raise typer.Exit(1)


@app.command()
def ledger(
    project: ProjectArg,
    episode: Annotated[int | None, typer.Option("--episode", "-e", help="Only this episode")] = None,
    as_json: JsonOpt = False,
    forget_rejections: Annotated[bool, typer.Option(
        "--forget-rejections", help="Let requests a provider rejected for their content be submitted again")] = False,
    forget_billed_failures: Annotated[bool, typer.Option(
        "--forget-billed-failures",
        help="Let content paid for with nothing to show (billed failures, unknown outcomes) be paid for again, "
             "past billed_retries; with --episode / --shot only theirs")] = False,
    shot: Annotated[int | None, typer.Option("--shot", help="With --forget-billed-failures: only this shot")] = None,
) -> None:
    """What the project has spent: by provider, stage, episode, shot and day; pending and unknown requests; billed
    failures."""
    try:
        folder = load_project(project)
    except ReelflowError as exc:
        raise fail(str(exc)) from None
    from reelflow.state.ledger import Ledger
    from reelflow.state.store import store_for

    if forget_rejections:
        forgotten = store_for(folder.state_dir).forget_rejections()
        err.print(f"forgot {forgotten} recorded rejection(s); the next render submits them again")
    if forget_billed_failures:
        forgiven = Ledger.at(folder.state_dir).forget_billed_failures(episode, shot)
        err.print(f"forgave {forgiven} billed failure(s) and unknown outcome(s): still money spent, no longer counted "
                  "against billed_retries")
    report = Ledger.at(folder.state_dir).report(episode)
    if as_json:
        typer.echo(json.dumps(report.model_dump()))
        return
    title = f"ledger: {folder.project.code}" + (f" episode {episode:03d}" if episode is not None else "")
    for heading, groups in (("provider", report.by_provider), ("stage", report.by_stage),
                            ("episode", report.by_episode), ("shot", report.by_shot), ("day (UTC)", report.by_day)):
        table = Table(title=f"{title} · by {heading}")
        for column in (heading, "requests", "spent"):
            table.add_column(column)
        for name, spend in sorted(groups.items()):
            table.add_row(name, str(spend.requests), f"${spend.spent_usd:.3f}")
        out.print(table)
    for heading, requests in (("pending (counted at their price)", report.pending),
                              ("unknown: no answer came (counted at their price)", report.unknown),
                              ("billed failures", report.billed_failures)):
        table = Table(title=f"{title} · {heading}")
        for column in ("request", "provider", "stage", "episode", "shot", "usd", "detail"):
            table.add_column(column)
        for request in requests:
            usd = request.price_usd if request.status in ("pending", "submitting", "unknown") else request.cost_usd
            table.add_row(request.request_id, request.provider, request.stage or "", str(request.episode or ""),
                          str(request.shot or ""), f"${usd:.3f}", Text(request.detail))
        out.print(table)
    out.print(f"spent: ${report.spent_usd:.3f} in {report.requests} requests "
              f"(${report.charged_usd:.3f} charged, ${report.shadow_usd:.3f} local shadow cost, not charged; "
              f"${report.estimated_usd:.3f} at list prices, ${report.billed_usd:.3f} as the services reported)")


@app.command()
def report(
    project: ProjectArg,
    run_id: Annotated[str, typer.Argument(help="The render's flow run id, as the Prefect UI shows it")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole report as JSON and nothing else")] = False,
) -> None:
    """A render's report, from this machine or the project's blob store: any machine reads any run's report."""
    from reelflow.state.reports import read_report

    try:
        folder = load_project(project)
        data = read_report(folder.state_dir, run_id)
    except ReelflowError as exc:
        raise fail(str(exc), code=2 if isinstance(exc, ContractError) else 1) from None
    if data is None:
        raise fail(f"run {run_id}: no report (it is written when a render ends)")
    if as_json:
        typer.echo(data.decode())
        return
    try:
        print_report(RenderReport.model_validate_json(data))
    except ValueError:
        raise fail(f"run {run_id}: its report is not one this reelflow can read (--json prints it)", code=1) from None


def size_words(count: int) -> str:
    """Bytes as people read them: B, KB, MB, GB, TB (powers of 1000)."""
    size = float(count)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            break
        size /= 1000
    return f"{count} B" if unit == "B" else f"{size:.1f} {unit}"


@app.command("gc")
def gc_command(
    project: ProjectArg,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Remove nothing; count what would go")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove the cache rows, blobs (here and in S3) and volume LoRAs that no manifest, dailies take, open request or
    LoRA registry entry refers to, and say how much that freed.

    An approved take's files are never removed. Anything made in the last day (REELFLOW_GC_GRACE_S seconds) stays:
    a render still running has not written its manifest yet.
    """
    from reelflow.state.gc import collect
    from reelflow.tasks.gpu import network_volume

    try:
        folder = load_project(project)
        runpod = folder.project.comfyui.runpod if folder.project.comfyui is not None else None
        volume = network_volume(getattr(runpod, "network_volume_id", None), getattr(runpod, "datacenter", None))
        done = collect(folder, dry_run=dry_run, volume=volume)
    except ReelflowError as exc:
        raise fail(str(exc), code=2 if isinstance(exc, ContractError) else 1) from None
    if as_json:
        typer.echo(json.dumps(asdict(done)))
        return
    verb, freed = ("would remove", "would be freed") if dry_run else ("removed", "freed")
    out.print(f"{verb} {done.cache_rows} cache row(s), {done.blobs} local blob(s), {done.remote_blobs} blob(s) in S3, "
              f"{done.volume_files} volume file(s): {size_words(done.freed_bytes)} {freed}", markup=False)


@app.command("changed-episodes")
def changed_episodes_command(
    project: ProjectArg,
    base: Annotated[str, typer.Argument(help="The commit to compare with (sha, branch or tag)")],
    head: Annotated[str, typer.Argument(help="The commit whose episodes to list")],
    as_json: JsonOpt = False,
) -> None:
    """The episodes whose inputs (storyboards, project, breakdown, LoRA registry, keystones) changed from BASE to HEAD."""
    from reelflow.state.checkout import changed_episodes, resolve_commit

    try:
        episodes = changed_episodes(project, base, head)
        shas = {"base": resolve_commit(project, base), "head": resolve_commit(project, head)}
    except ReelflowError as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps({"episodes": episodes} | shas))
    else:
        out.print(f"episodes: {', '.join(map(str, episodes)) or 'none'}", markup=False)


def server_words(info: server.ServerInfo) -> str:
    """Where a local server is: its address (port included), process and home."""
    return f"{info.url} (port {info.port}, pid {info.pid}, home {info.home})"


@server_app.command("start")
def server_start() -> None:
    """Start the local Prefect server (or find the running one) and print the UI address, port and home."""
    try:
        info = server.start_server()
    except ReelflowError as exc:
        raise fail(str(exc), code=1) from None
    out.print(f"Prefect UI: {server_words(info)}", markup=False)


@server_app.command("run")
def server_run(
    host: Annotated[str | None, typer.Option(
        "--host", help="Address to listen on (default 127.0.0.1; others need PREFECT_SERVER_API_AUTH_STRING)")] = None,
    port: Annotated[int | None, typer.Option(
        "--port", help="Port (default REELFLOW_SERVER_PORT, else 4200; 0: any free port)")] = None,
) -> None:
    """Run the local Prefect server in the foreground, for a supervisor (systemd).

    Its database comes from PREFECT_SERVER_DATABASE_CONNECTION_URL or REELFLOW_DATABASE in the environment, never from
    the command line (a password there shows in every process list)."""
    try:
        server.run_server(host=host, port=port, database=server.database_from_env())
    except ReelflowError as exc:
        raise fail(str(exc), code=2 if isinstance(exc, ContractError) else 1) from None


@server_app.command("stop")
def server_stop() -> None:
    """Stop the local Prefect server this machine's reelflow started."""
    info = server.stop_server()
    if info is None:
        out.print(f"no server was running (home {server.reelflow_home()})", markup=False)
    else:
        out.print(f"stopped: {server_words(info)}", markup=False)


@server_app.command("status")
def server_status() -> None:
    """Say whether the local Prefect server is running, and where: address, port and home."""
    info = server.running_server()
    if info is None:
        out.print(f"not running (reelflow render starts it; home {server.reelflow_home()})", markup=False)
        raise typer.Exit(1)
    out.print(f"running: {server_words(info)}", markup=False)


REVIEW_STYLE = {"pending": "dim", "generated": "blue", "needs_review": "yellow", "approved": "green", "retake": "red",
                "keyframes_review": "magenta", "keyframes_approved": "cyan"}


def decide_shots(project: Path, episode: int, decisions: dict[int, Decision], note: str | None) -> tuple[Path, Dailies]:
    """Apply every decision to the dailies file, which is saved only if all of them hold; returns it and the result."""
    folder = load_project(project)
    storyboard = load_storyboard(folder, episode)
    path = folder.dailies_path(episode)
    unknown = sorted(set(decisions) - {shot.shot for shot in storyboard.shots})
    if unknown:
        raise ContractError(f"{folder.storyboard_path(episode).name}: shot {unknown[0]} is not in the storyboard")
    if not decisions:
        return path, read_dailies(folder, storyboard)
    try:
        return path, apply_decisions(folder, storyboard, decisions, by="cli", note=note)
    except ContractError as exc:
        message = str(exc)
        raise ContractError(message if message.startswith(path.name) else f"{path.name}: {message}") from None


def dailies_table(state: Dailies) -> Table:
    table = Table(title=f"dailies: episode {state.episode:03d}")
    for column in ("shot", "status", "take", "approved", "note"):
        table.add_column(column)
    for review in state.shots:
        approved = f"T{review.approved_take:02d}" if review.approved_take else ""
        table.add_row(str(review.shot), Text(review.status, style=REVIEW_STYLE[review.status]), f"T{review.take:02d}",
                      approved, Text(review.note or ""))
    return table


def serve_dailies(project: Path, episode: int, port: int) -> None:
    """The review page on 127.0.0.1 until Ctrl-C."""
    from reelflow.web.dailies_server import DailiesServer

    try:
        folder = load_project(project)
        review = DailiesServer(folder, load_storyboard(folder, episode), port)
    except ReelflowError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"--port: cannot serve on 127.0.0.1:{port} ({exc.strerror or exc})") from None
    try:
        out.print(f"dailies: {review.url}\nCtrl-C stops the server")
        review.serve_forever()
    except KeyboardInterrupt:
        out.print("stopped")


@app.command()
def dailies(
    project: ProjectArg,
    episode: EpisodeOpt,
    approve: Annotated[str | None, typer.Option("--approve", help="Approve these shots' latest takes, e.g. 1,2")] = None,
    retake: Annotated[str | None, typer.Option("--retake", help="Send these shots back for a new take")] = None,
    review: Annotated[str | None, typer.Option("--review", help="Mark these shots as needing review")] = None,
    approve_keyframes: Annotated[str | None, typer.Option(
        "--approve-keyframes", help="Approve these shots' held keyframes: the next render makes their video from them")] = None,
    note: Annotated[str | None, typer.Option("--note", help="A note saved with each decision given")] = None,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port of the review page; 0 takes any free one")] = 8420,
    as_json: Annotated[bool, typer.Option("--json", help="Print the shots' review state as JSON; serve nothing")] = False,
) -> None:
    """Review an episode's takes: the dailies page on 127.0.0.1, or --approve/--retake/--review/--approve-keyframes
    straight from here."""
    try:
        decisions = decisions_from(*(parse_shots(text, option) or [] for option, text in
                                     (("--approve", approve), ("--retake", retake), ("--review", review),
                                      ("--approve-keyframes", approve_keyframes))))
    except ContractError as exc:
        raise fail(str(exc)) from None
    if note is not None and not decisions:
        raise fail("--note: give --approve, --retake, --review or --approve-keyframes with it")
    project = project.resolve()
    if not decisions and not as_json:
        serve_dailies(project, episode, port)
        return
    try:
        path, state = decide_shots(project, episode, decisions, note)
    except ReelflowError as exc:
        raise fail(str(exc)) from None
    if as_json:
        shots = [shot.model_dump(include={"shot", "status", "take", "approved_take"}) for shot in state.shots]
        typer.echo(json.dumps({"episode": state.episode, "dailies": str(path), "shots": shots}))
    else:
        out.print(dailies_table(state))
        out.print(f"dailies: {path}")


@app.command()
def review(
    project: ProjectArg,
    episode: EpisodeOpt,
    timeout_h: Annotated[float, typer.Option("--timeout-hours", min=0.01, help="Fail the run if nobody answers by then")] = 24.0,
) -> None:
    """Start a Prefect run that pauses with a form: approve, retake or re-review shots from the Prefect UI."""
    project = project.resolve()
    try:
        folder = load_project(project)
        load_storyboard(folder, episode)
        api_url = server.connect()
    except ReelflowError as exc:
        raise fail(str(exc)) from None
    quiet_prefect_console()
    from reelflow.flows.review import review_episode

    ui = api_url.removesuffix("/api")
    out.print(f"waiting for the director: open {ui}/runs, run ep{episode:03d}-review, and fill its form (Ctrl-C stops)")
    state = review_episode(str(project), episode, timeout_s=round(timeout_h * 3600), return_state=True)
    statuses = state.result(raise_on_failure=False)
    if isinstance(statuses, BaseException):
        raise fail(f"review failed: {' '.join(str(statuses).split()) or type(statuses).__name__}", code=1)
    out.print(dailies_table(read_dailies(folder, load_storyboard(folder, episode))))


for character_command in (candidates, pick, train):
    app.command()(character_command)


def main() -> None:
    """The `reelflow` command; a reelflow error no command caught (a state database or blob store out of reach) is
    still one line and a non-zero exit, never a traceback."""
    try:
        app(prog_name="reelflow")
    except ReelflowError as exc:
        raise SystemExit(fail(str(exc), code=2 if isinstance(exc, ContractError) else 1).exit_code) from None


if __name__ == "__main__":
    sys.exit(main())
