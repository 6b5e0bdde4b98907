"""Keyframe QC on one try of a shot: Gate 1 (artifacts, measured here) and Gate 2 (a vision judge), then its route."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

from prefect import task
from pydantic import BaseModel, Field

from reelflow.media.qc import check_image, check_pair, check_split_panel
from reelflow.providers.base import VisionJudge
from reelflow.providers.registry import get_provider
from reelflow.schemas.assets import ManifestEntry
from reelflow.schemas.qc import Route
from reelflow.schemas.requests import JudgeRequest, Verdict
from reelflow.schemas.segments import MID
from reelflow.schemas.storyboard import Approach
from reelflow.state.cache import Outcome, is_planned
from reelflow.state.progress import StageEvent, emit
from reelflow.tasks.calls import call_provider, in_parallel, manifest_entry, run_media
from reelflow.tasks.job import ShotJob, StageResult
from reelflow.tasks.keyframes import FRAME_SIZE, frame_prompt
from reelflow.tasks.retry import stage_task_options

GATE1_VERSION = 1
JUDGE_VERSION = 1


class GateResult(BaseModel):
    """What the gates found on one try of a shot's keyframes, and where it goes."""

    route: Route
    gate1: list[str] = Field(default_factory=list)
    scores: dict[str, float] = Field(default_factory=dict)
    reasons: list[str] = Field(default_factory=list)
    entries: list[ManifestEntry] = Field(default_factory=list, description="the judge's verdicts, for the manifest")


def _gate1_failures(job: ShotJob, frames: dict[str, Path]) -> list[str]:
    """Gate 1 on raw keyframes: every still, each split panel's edges, and first vs last. A long shot's intermediate
    keyframes are single frames whatever the approach."""
    triptych = job.shot.generation_approach is Approach.TRIPTYCH
    axis = "vertical" if job.project.aspect_ratio == "9:16" else "horizontal"
    failures, thresholds = [], job.project.qc.gate1
    for role, path in frames.items():
        panel = triptych and not role.startswith(MID)
        expected = None if panel else FRAME_SIZE[job.project.aspect_ratio]
        reports = [check_image(path, expected_size=expected, thresholds=thresholds)]
        if panel:
            reports.append(check_split_panel(path, axis=axis, thresholds=thresholds))
        failures += [f"{role}: {finding.check}: {finding.message}" for report in reports for finding in report.failures]
    if "first" in frames and "last" in frames:
        pair = check_pair(frames["first"], frames["last"], thresholds)
        failures += [f"first/last: {f.check}: {f.message}" for f in pair.failures]
    return failures


def _gate1(job: ShotJob, raw: StageResult) -> list[str] | None:
    """Gate 1, cached on the frames' content and the thresholds; None in a dry run where it is not cached."""
    roles = list(raw.assets)

    def make(scratch: Path) -> list[Path]:
        out = scratch / "gate1.json"
        out.write_text(json.dumps(_gate1_failures(job, {role: raw.assets[role].path for role in roles})))
        return [out]

    params = {"thresholds": job.project.qc.gate1.model_dump(), "roles": roles, "approach": job.shot.generation_approach.value,
              "aspect": job.project.aspect_ratio}
    outcome = run_media(job, stage="gate1", version=GATE1_VERSION, model="gate1", params=params,
                        inputs=[raw.assets[role] for role in roles], make=make)
    return None if is_planned(outcome.file) else list(json.loads(outcome.file.path.read_text()))


def _judge_skipped(job: ShotJob, raw: StageResult) -> str | None:
    """Why Gate 2 cannot run on these frames, if it cannot."""
    judge = job.project.stage("qc").use
    if not isinstance(get_provider(judge), VisionJudge):
        return f"Gate 2 skipped: {judge} has no vision judge (set providers.qc to gemini or local)"
    makers = {entry.provider for entry in raw.entries if entry.stage == "keyframes"}
    if judge == "local" and makers - {"local"}:
        return f"Gate 2 skipped: the local judge reads only frames it drew, these came from {', '.join(sorted(makers))}"
    return None


def _gate2(job: ShotJob, raw: StageResult) -> tuple[dict[str, float], list[str], list[ManifestEntry]] | None:
    """The judge's score and reasons for every keyframe, each call cached like a generation (None: not yet judged)."""
    skipped = _judge_skipped(job, raw)
    if skipped is not None:
        return {}, [skipped], []
    scores: dict[str, float] = {}
    reasons: list[str] = []
    entries: list[ManifestEntry] = []
    planned = False  # a dry run's verdict still to be made: every frame's call is priced, none is read

    def judge(role: str) -> Outcome:
        frame = raw.assets[role]
        return call_provider(
            job, stage="qc", version=JUDGE_VERSION, capability="judge_image", ext="json", inputs=[frame],
            build=lambda model: JudgeRequest(
                model=model, image=frame.path, prompt=frame_prompt(job, role),
                characters=tuple(job.shot.characters_in_shot), location=job.shot.location,
            ),
        )

    roles = list(raw.assets)
    for role, outcome in zip(roles, in_parallel([partial(judge, role) for role in roles]), strict=True):
        if is_planned(outcome.file):
            planned = True
            continue
        entries.append(manifest_entry(job, outcome, suffix=None, ext="json"))
        verdict = Verdict.model_validate_json(outcome.file.path.read_bytes())
        scores[role] = verdict.score
        reasons += [f"{role}: {reason}" for reason in verdict.reasons]
    return None if planned else (scores, reasons, entries)


@task(name="gates", task_run_name="{job.label}-gates{job.try_suffix}", **stage_task_options())
def gate_keyframes(job: ShotJob, raw: StageResult) -> GateResult:
    """Gate 1 and Gate 2 on one try of the shot's raw keyframes, routed by the project's `qc` settings.

    In a dry run, a try whose gates are not in the cache yet is taken as passing (the first try is priced).
    """
    emit(StageEvent(job.run, job.shot.shot, "gates", "running"))
    gate1, gate2 = in_parallel([partial(_gate1, job, raw), partial(_gate2, job, raw)])
    if gate1 is None or gate2 is None:
        return GateResult(route="pass")
    scores, reasons, entries = gate2
    route = job.project.qc.route(gate1, list(scores.values()))
    return GateResult(route=route, gate1=gate1, scores=scores, reasons=reasons, entries=entries)
