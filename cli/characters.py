"""`reelflow candidates`, `pick` and `train`: a character's LoRA from keystones to the registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, cast, get_args

import typer
from rich.console import Console

from reelflow.cli import server
from reelflow.cli.exits import fail
from reelflow.schemas.characters import EXPRESSION_RANGE, WARDROBE_RANGE, CandidateManifest, CandidateMode, LoraType
from reelflow.schemas.errors import ContractError, ReelflowError
from reelflow.schemas.load import load_project
from reelflow.schemas.report import money_words
from reelflow.state.candidates import require_candidates, save_selection, selection_problems

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
MODES = get_args(CandidateMode)
TYPES = get_args(LoraType)
ProjectArg = Annotated[Path, typer.Argument(help="Project folder")]
CharacterArg = Annotated[str, typer.Argument(help="Character id from breakdown.json, e.g. JINX")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object and nothing else on stdout")]
MaxCostOpt = Annotated[float | None, typer.Option("--max-cost", min=0, help="Submit nothing past this many USD")]


def one_of(option: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise fail(f"{option}: {value!r} is not one of {', '.join(allowed)}")
    return value


def spread_words(manifest: CandidateManifest) -> str:
    """The selection's wardrobes and expressions against the seed's targets, e.g. `3 wardrobes (aim 3-5)`."""
    return " · ".join(f"{len(manifest.spread(field))} {field}s (aim {low}-{high})"
                      for field, (low, high) in (("wardrobe", WARDROBE_RANGE), ("expression", EXPRESSION_RANGE)))


def _quiet() -> None:
    from reelflow.cli.app import quiet_prefect_console

    quiet_prefect_console()


def candidates(
    project: ProjectArg,
    character: CharacterArg,
    count: Annotated[int, typer.Option("--count", min=1, max=200, help="How many candidates")] = 24,
    mode: Annotated[str, typer.Option("--mode", help="threepass (recommended), hybrid or gemini")] = "threepass",
    seed: Annotated[int, typer.Option("--seed", min=0, help="The diversity grid's and the calls' seed")] = 0,
    caption_type: Annotated[str, typer.Option("--captions", help="Caption for z_image, flux2 or wan22")] = "flux2",
    max_cost: MaxCostOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make diverse LoRA candidates of a character from its keystones, in visual/lora_candidates/<CHAR>/."""
    chosen_mode = cast(CandidateMode, one_of("--mode", mode, MODES))
    captions = cast(LoraType, one_of("--captions", caption_type, TYPES))
    project = project.resolve()
    try:
        from reelflow.flows.characters import check_candidates_run

        check_candidates_run(load_project(project), character, chosen_mode, seed)
        server.connect()
    except ReelflowError as exc:
        raise fail(str(exc)) from None
    _quiet()
    from reelflow.flows.characters import build_character_dataset

    state = build_character_dataset(str(project), character, count, chosen_mode, seed, captions, max_cost,
                                    return_state=True)
    report = state.result(raise_on_failure=False)
    if isinstance(report, ContractError):
        raise fail(str(report))
    if isinstance(report, BaseException):
        raise fail(f"candidates failed: {' '.join(str(report).split()) or type(report).__name__}", code=1)
    if as_json:
        typer.echo(report.model_dump_json())
    else:
        for failure in report.failed:
            err.print(f"{failure.file} failed: {failure.reason}", style="red", markup=False)
        out.print(f"{character}: {len(report.files)} candidates ({report.made} made, {report.cached} cached, "
                  f"{len(report.failed)} failed) · provider calls {report.provider_calls} · "
                  f"{money_words(report.charged_usd, report.shadow_usd)}\n"
                  f"manifest: {report.manifest}\nnext: reelflow pick {project} {character}", markup=False)
    if report.failed:
        raise typer.Exit(1)


def pick(
    project: ProjectArg,
    character: CharacterArg,
    select: Annotated[Path | None, typer.Option("--select", help="Save this selection (a file name a line); no page")] = None,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port on 127.0.0.1 (0: any free one)")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Curate a character's candidates: a page on 127.0.0.1, or --select FILE; saves the selection in the manifest."""
    project = project.resolve()
    try:
        from reelflow.flows.characters import find_character

        find_character(load_project(project), character)
        manifest = require_candidates(project, character)
    except ReelflowError as exc:
        raise fail(str(exc)) from None
    if select is None:
        _serve_pick(project, character, port)
        return
    try:
        lines = select.read_text().splitlines()
    except OSError as exc:
        raise fail(f"--select: {select}: {exc.strerror or exc}") from None
    files = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    problems = selection_problems(manifest, files, source=str(select))
    if problems:
        raise fail("\n".join(problems))
    try:
        saved = save_selection(project, character, files, by="--select")
    except ReelflowError as exc:
        raise fail(str(exc)) from None
    chosen = [candidate.file for candidate in saved.selected()]
    if as_json:
        typer.echo(json.dumps({"character": character, "selected": chosen, "count": len(chosen),
                               "wardrobes": saved.spread("wardrobe"), "expressions": saved.spread("expression")}))
        return
    out.print(f"{character}: {len(chosen)} selected · {spread_words(saved)}\n"
              f"next: reelflow train {project} {character} --type flux2", markup=False)


def _serve_pick(project: Path, character: str, port: int) -> None:
    """The pick page on 127.0.0.1 until Ctrl-C."""
    from reelflow.web.pick_server import PickServer

    try:
        page = PickServer(project, character, port)
    except OSError as exc:
        raise fail(f"--port: cannot serve on 127.0.0.1:{port} ({exc.strerror or exc})") from None
    try:
        out.print(f"pick: {page.url}\nCtrl-C stops the server")
        page.serve_forever()
    except KeyboardInterrupt:
        out.print("stopped")


def train(
    project: ProjectArg,
    character: CharacterArg,
    lora_type: Annotated[str, typer.Option("--type", help="z_image, flux2 or wan22")],
    steps: Annotated[int | None, typer.Option("--steps", min=10, max=10_000, help="Training steps (default per type)")] = None,
    max_cost: MaxCostOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train a character LoRA on the selected candidates and register it in visual/lora_registry.json."""
    kind = cast(LoraType, one_of("--type", lora_type, TYPES))
    project = project.resolve()
    try:
        from reelflow.flows.characters import check_training_run
        from reelflow.tasks.training import dataset_warnings

        manifest = check_training_run(load_project(project), character, kind)
        server.connect()
    except ReelflowError as exc:
        raise fail(str(exc)) from None
    for warning in dataset_warnings(manifest, kind):
        err.print(f"warning: {warning}", style="yellow", markup=False)
    _quiet()
    from reelflow.flows.characters import train_character_lora

    state = train_character_lora(str(project), character, kind, steps, max_cost, return_state=True)
    report = state.result(raise_on_failure=False)
    if isinstance(report, ContractError):
        raise fail(str(report))
    if isinstance(report, BaseException):
        raise fail(f"training failed: {' '.join(str(report).split()) or type(report).__name__}", code=1)
    if as_json:
        typer.echo(report.model_dump_json())
        return
    paths = "\n".join(f"  {entry['path']}" + (f" ({entry['noise']} noise)" if entry.get("noise") else "")
                      for entry in report.entries)
    out.print(f"{character}: {lora_type} LoRA on {report.images} images · provider calls {report.provider_calls} · "
              f"{money_words(report.charged_usd, report.shadow_usd)}\nregistered in {report.registry}:\n{paths}",
              markup=False)
