"""Provider calls from stages: cached by content, budgeted and bounded per provider across processes.

Content paid for with nothing to show (a billed but unusable output, or an outcome that never came) is submitted
again at most the project's `billed_retries` times, counted per cache key in the ledger over every run, so neither
Prefect's retries nor tomorrow's nightly run can add more; content the provider rejects goes to the stage's
fallback. The ledger's rules for each request are state/ledger.py's.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from reelflow.media.hashing import sha256_unchanged
from reelflow.media.probe import probe_image
from reelflow.providers.base import LoraTrainer, Provider, Ticket, VisionJudge
from reelflow.providers.registry import get_provider
from reelflow.providers.runpod.errors import NoCapacity
from reelflow.schemas.assets import AssetRef, ManifestEntry
from reelflow.schemas.errors import (
    AccountRestricted,
    BadRequest,
    BilledRetriesSpent,
    ContentRejected,
    ContractError,
    OutcomeUnknown,
    UnusableOutput,
)
from reelflow.schemas.project import GPU_PROVIDERS
from reelflow.schemas.requests import Generation, ImageRequest, JudgeRequest, TrainRequest, _Request
from reelflow.state.cache import MEDIA, Operation, Outcome, is_dry_run, run_cached
from reelflow.state.ledger import Charge, LedgerTicket
from reelflow.state.limits import provider_slot
from reelflow.state.progress import StageEvent, emit
from reelflow.tasks.gpu import Payer, gpu_provider, payer
from reelflow.tasks.job import Job, ShotJob, run_logger

RequestBuilder = Callable[[str], _Request]
# Providers whose service limited the account during this process (the run): nothing more is sent to them.
_restricted: dict[str, str] = {}
T = TypeVar("T")


# One pool for every fan-out of the process: its threads are started once and reused (a pool per fan-out started
# and joined a thread per call, 0.5-1 ms each, more when the cores are busy). Each shot in flight has at most three
# calls in it at once (Gate 1 beside two judges; the caller runs the last call of a fan-out itself), so the pool
# never runs out of threads for the shots memory allows (flows/render.py: at most 256).
FAN_OUT_THREADS = 1024
_fan_out = ThreadPoolExecutor(max_workers=FAN_OUT_THREADS, thread_name_prefix="reelflow-call")


def in_parallel(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Run a shot's independent calls at once (the provider slots still bound them) and return their results in
    order. Each runs in a copy of this context (the task run's logger, a dry run); all end before the first error
    is raised, so no paid call is left behind unrecorded. A dry run makes nothing and waits on nothing: one by one."""
    if len(calls) <= 1 or is_dry_run():
        return [call() for call in calls]
    futures = [_fan_out.submit(contextvars.copy_context().run, call) for call in calls[:-1]]
    last: Future[T] = Future()
    try:
        last.set_result(contextvars.copy_context().run(calls[-1]))
    except BaseException as error:
        last.set_exception(error)
    wait(futures)  # every call ends before an error of theirs is raised, the earliest call's first
    return [future.result() for future in [*futures, last]]


def _report(job: Job, stage: str, outcome: Outcome) -> None:
    """Log the operation to the task run and tell the live view; a dry run (a walk that makes nothing) says nothing."""
    if is_dry_run():
        return
    status = "done" if outcome.made else "cached"
    made = outcome.provenance
    run_logger().info(
        "%s %s: %s by %s/%s, %s (cost $%.3f this run)",
        job.label, stage, status, made.provider, made.model, outcome.file.path.name, outcome.cost_usd,
    )
    if job.shot_number is not None:
        emit(StageEvent(job.run, job.shot_number, stage, status, outcome.provider_calls, outcome.cost_usd,
                        shadow=made.provider == "local"))


def _invoke(provider: Provider, capability: str, request: _Request, out: Path, ticket: Ticket) -> Generation:
    """Call one capability; a judge's verdict or a trainer's result is written to `out` as JSON (a trainer's weight
    files after it), so it is cached like any output."""
    if isinstance(provider, LoraTrainer) and isinstance(request, TrainRequest):
        started = time.monotonic()
        weights = out.parent / "weights"
        weights.mkdir()
        trained = provider.train_lora(request, weights, ticket=ticket)
        out.write_text(trained.model_dump_json(exclude={"files"}))
        return Generation(provider=provider.name, model=request.model, files=[out, *trained.files],
                          cost_usd=trained.cost_usd, request_id=trained.request_id, seconds=time.monotonic() - started)
    if isinstance(provider, VisionJudge) and isinstance(request, JudgeRequest):
        started = time.monotonic()
        verdict = provider.judge_image(request, ticket=ticket)
        out.write_text(verdict.model_dump_json())
        return Generation(provider=provider.name, model=request.model, files=[out], cost_usd=verdict.cost_usd,
                          seconds=time.monotonic() - started)
    return getattr(provider, capability)(request, out, ticket=ticket)


def reference_inputs(request: _Request) -> list[AssetRef]:
    """The reference images an image request carries, by content: its key holds them after the stage's own inputs
    (none: the key is as before references existed), so a ref's new bytes make the frame again and a new name does not."""
    if not isinstance(request, ImageRequest):
        return []
    return [AssetRef(path=path, sha256=sha256_unchanged(path), media=probe_image(path)) for path in request.references]


def provider_for(job: Job, name: str) -> Provider:
    """The provider registered as `name`; a GPU provider is the project's own (its ComfyUI, its pods)."""
    if name in GPU_PROVIDERS:
        return gpu_provider(job.root, job.project, job.state_dir, name)
    return get_provider(name)


def _call_one(job: Job, name: str, model: str | None, stage: str, version: int, capability: str,
              build: RequestBuilder, inputs: list[AssetRef], ext: str, outputs: int) -> Outcome:
    provider = provider_for(job, name)
    request = build(model or provider.default_models[stage])
    try:
        provider.check(request)
    except BadRequest as exc:  # a WireViolation, or a request the provider cannot serve
        where = job.label if job.shot_number is None else f"shot {job.shot_number}"
        raise ContractError(f"{where}: {stage}: {name}: {exc}") from None
    operation = Operation(stage, version, name, request.model, provider.cache_params(request),
                          [*inputs, *reference_inputs(request)], request.seed)
    key, price, ledger = operation.key, provider.estimate(request), job.ledger

    shadow = name == "local"
    charge = Charge(run=job.run, parent_run=job.parent_run, stage=stage, episode=job.episode_number,
                    shot=job.shot_number, price_usd=price, shadow=shadow, share=getattr(provider, "share", False))
    retries = job.project.billed_retries

    def make(scratch: Path, ticket: LedgerTicket) -> Generation:
        # A request still pending for this key is polled, not paid again: only a new submit reserves its price.
        # Shadow cost never holds a budget back.
        resuming = ledger.pending(key) is not None
        if not resuming and (paid := ledger.billed_failures(key)) > retries:
            raise BilledRetriesSpent(
                f"{name}: this content was paid for {paid} times with nothing to show "
                f"(billed_retries is {retries}); not submitted again: `reelflow ledger PROJECT "
                "--forget-billed-failures` allows more", provider=name)
        reservation = None if resuming or shadow else job.budgets.reserve(job.run, price, job.caps,
                                                                           parent_run=job.parent_run)
        ticket.charge = replace(charge, reservation=reservation)
        try:
            with provider_slot(job.state_dir, name, job.project.concurrency):
                if name in _restricted:  # the service stopped the account: any further request fails, and is billed
                    raise AccountRestricted(f"{_restricted[name]} (not sent)", provider=name)
                paying = payer.set(Payer(job.run, job.parent_run, job.caps))  # who pays for a pod it starts
                try:
                    return _invoke(provider, capability, request, scratch / f"out.{ext}", ticket)
                except AccountRestricted as exc:
                    _restricted.setdefault(name, str(exc))  # before the slot is free for the next call
                    raise
                finally:
                    payer.reset(paying)
        finally:
            job.budgets.release(reservation)

    while True:
        ticket = ledger.ticket(key, name, charge, deferred=True)
        try:
            return run_cached(job.store, operation, partial(make, ticket=ticket), price=price, outputs=outputs,
                              settlement=ticket)
        except (UnusableOutput, OutcomeUnknown) as exc:
            paid = ledger.billed_failures(key)
            if paid > retries:
                raise
            why = "billed an unusable output" if isinstance(exc, UnusableOutput) else (
                f"left the outcome unknown (counted at ${price:.3f})")
            run_logger().warning("%s %s: %s %s (%s); submitting again (%s of %s billed retries)",
                              job.label, stage, name, why, exc, paid, retries)


def call_provider(
    job: Job,
    *,
    stage: str,
    version: int,
    capability: str,
    build: RequestBuilder,
    inputs: list[AssetRef],
    ext: str,
    use: tuple[str, str | None] | None = None,
    outputs: int = 1,
) -> Outcome:
    """Call the stage's provider once per content key; content it rejects goes to the stage's fallback.

    `use` names the provider and model instead of the stage's choice (a stage whose steps need several models);
    `outputs` is how many files the call makes (a dry run plans that many).
    """
    choice = job.project.stage(stage)
    name, model = use or (choice.use, choice.model)
    args = (stage, version, capability, build, inputs, ext, outputs)
    try:
        outcome = _call_one(job, name, model, *args)
    except (ContentRejected, NoCapacity) as exc:
        if choice.fallback is None or choice.fallback == name:
            raise
        why = "rejected the content" if isinstance(exc, ContentRejected) else "has no GPU to run it"
        run_logger().warning("%s %s: %s %s (%s); trying %s", job.label, stage, name, why, exc, choice.fallback)
        outcome = _call_one(job, choice.fallback, None, *args)
    _report(job, stage, outcome)
    return outcome


def run_media(job: Job, *, stage: str, version: int, model: str, params: dict[str, Any],
              inputs: list[AssetRef], make: Callable[[Path], list[Path]], outputs: int = 1) -> Outcome:
    """A pure media operation (no provider, no cost), cached like every other operation."""
    operation = Operation(stage, version, MEDIA, model, params, inputs, None)
    outcome = run_cached(
        job.store, operation, lambda scratch: Generation(provider=MEDIA, model=model, files=make(scratch)),
        outputs=outputs,
    )
    _report(job, stage, outcome)
    return outcome


def manifest_entry(job: ShotJob, outcome: Outcome, *, suffix: str | None, ext: str, index: int = 0) -> ManifestEntry:
    """The manifest entry of one output, named by the convention when it has a suffix.

    Named files are copied into the assets folder only once the whole shot has succeeded.
    """
    ref = outcome.files[index]
    name = job.asset_path(suffix, ext).name if suffix is not None else None
    return ManifestEntry(
        **outcome.provenance.model_dump(), name=name, shot=job.shot.shot, take=job.take, sha256=ref.sha256, media=ref.media
    )
