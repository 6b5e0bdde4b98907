"""Run an operation once per content key: stage, version, provider, model, params, input hashes."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from reelflow.media.probe import probe
from reelflow.schemas.assets import AssetRef, InputRef, MediaInfo, Provenance
from reelflow.schemas.errors import ContentRejected, ReelflowError
from reelflow.schemas.requests import Generation
from reelflow.state.db import Sql
from reelflow.state.legacy import path_keyed_loras
from reelflow.state.loras import registered_paths
from reelflow.state.store import AssetStore, CacheRecord, StoredFile

MEDIA = "media"  # the provider name of pure media operations: no calls, no cost
UNPAID = frozenset({MEDIA, "local"})  # made again for nothing if their cache entry is lost: no fsync per entry


@dataclass(frozen=True)
class Operation:
    """One cacheable unit of work and everything its output depends on."""

    stage: str
    version: int
    provider: str
    model: str
    params: dict[str, Any]
    inputs: list[AssetRef] = field(default_factory=list)
    seed: int | None = None

    @property
    def key(self) -> str:
        content = {
            "stage": self.stage,
            "version": self.version,
            "provider": self.provider,
            "model": self.model,
            "params": self.params,
            "inputs": [ref.sha256 for ref in self.inputs],
        }
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Outcome:
    """The files an operation produced (blob references), whether this run paid for them and whether it made them."""

    files: list[AssetRef]
    provenance: Provenance
    provider_calls: int
    cost_usd: float
    made: bool = False  # made now, not found in the cache (a media operation makes without a call)

    @property
    def file(self) -> AssetRef:
        return self.files[0]


def _refs(store: AssetStore, record: CacheRecord) -> list[AssetRef]:
    return [AssetRef(path=store.blob_path(f.sha256, f.ext), sha256=f.sha256, media=f.media) for f in record.outputs]


@dataclass
class DryRun:
    """What a render would make now (cached work is free), and its cost by stage."""

    cost_by_stage: dict[str, float] = field(default_factory=dict)
    calls_by_stage: dict[str, int] = field(default_factory=dict)
    lookups: bool = True  # False: every operation stands in as planned (a walk that only builds requests)
    to_first_miss: bool = False  # True: the first operation not in the cache ends the walk (NotCached)

    def add(self, stage: str, cost_usd: float, calls: int) -> None:
        self.cost_by_stage[stage] = round(self.cost_by_stage.get(stage, 0.0) + cost_usd, 6)
        self.calls_by_stage[stage] = self.calls_by_stage.get(stage, 0) + calls

    @property
    def total_usd(self) -> float:
        return round(sum(self.cost_by_stage.values()), 6)


_dry_run: ContextVar[DryRun | None] = ContextVar("reelflow_dry_run", default=None)
PLANNED_MEDIA = MediaInfo(kind="image", width=0, height=0)


@contextmanager
def dry_run(*, lookups: bool = True, to_first_miss: bool = False) -> Iterator[DryRun]:
    """Within this block run_cached makes nothing: misses are priced into the dry run and stand in as planned files.

    Without `lookups` the cache is not read at all: every operation is planned, so the walk only builds requests.
    With `to_first_miss` a miss raises NotCached instead: the walk asks only whether everything is in the cache.
    """
    run = DryRun(lookups=lookups, to_first_miss=to_first_miss)
    token = _dry_run.set(run)
    try:
        yield run
    finally:
        _dry_run.reset(token)


def is_dry_run() -> bool:
    """True inside `dry_run()`: outputs are stand-ins and cannot be read."""
    return _dry_run.get() is not None


def is_planned(ref: AssetRef) -> bool:
    """True for a dry run's stand-in: a file that would be made, not one in the cache."""
    return ref.sha256.startswith("planned-")


def _planned(operation: Operation, plan: DryRun, price: float, outputs: int) -> Outcome:
    calls = 0 if operation.provider == MEDIA else 1
    plan.add(operation.stage, price, calls)
    key = operation.key
    width, height = operation.params.get("width"), operation.params.get("height")
    media = PLANNED_MEDIA  # the size an image request asks for, where it names one: what later stages will read
    if isinstance(width, int) and isinstance(height, int):
        media = MediaInfo(kind="image", width=width, height=height)
    files = [
        AssetRef(path=Path("planned") / f"{key}-{i}", sha256=f"planned-{key}-{i}", media=media)
        for i in range(outputs)
    ]
    provenance = Provenance(stage=operation.stage, stage_version=operation.version, provider=operation.provider,
                            model=operation.model, params=operation.params, seed=operation.seed, cost_usd=price)
    return Outcome(files, provenance, provider_calls=calls, cost_usd=price)


class NotCached(ReelflowError):
    """A walk `dry_run(to_first_miss=True)` met an operation that is not in the cache."""


def _keyed_by_path(store: AssetStore, operation: Operation) -> CacheRecord | None:
    """A LoRA stage's record (or rejection) from when LoRAs were keyed by their registry path, now under its key."""
    for params in path_keyed_loras(operation.params, lambda: registered_paths(store.root.parent)):
        earlier = replace(operation, params=params).key
        rejection = store.rejection(earlier)
        if rejection is not None:
            store.save_rejection(operation.key, operation.provider, rejection)
        record = store.lookup(earlier)
        if record is not None:
            record = record.model_copy(update={"key": operation.key})
            store.save(record, durable=operation.provider not in UNPAID)
            return record
    return None


class Settlement(Protocol):
    """A provider call's ledger entry whose completion is written with the cache entry of its output."""

    def commit(self, sql: Sql) -> None: ...

    def flush(self) -> None: ...


def run_cached(
    store: AssetStore,
    operation: Operation,
    make: Callable[[Path], Generation],
    *,
    price: float = 0.0,
    outputs: int = 1,
    settlement: Settlement | None = None,
) -> Outcome:
    """Return the cached result of `operation` if its files are intact, else make it and record it.

    `price` is what making it would cost and `outputs` how many files it makes; a dry run (see
    `dry_run`) uses them instead of making anything. `settlement` completes the paid request in the transaction
    that indexes its output: a crash in between leaves it pending, and the next run polls it instead of paying again.
    """
    key = operation.key
    plan = _dry_run.get()
    if plan is not None and not plan.lookups:
        return _planned(operation, plan, price, outputs)
    # a hit needs no lock: records are indexed only once their blobs are stored
    record = store.lookup(key) or _keyed_by_path(store, operation)
    if record is not None:
        return Outcome(_refs(store, record), record.provenance, provider_calls=0, cost_usd=0.0)
    if plan is not None and plan.to_first_miss:
        raise NotCached(f"{operation.stage} is not in the cache")  # without waiting on a make in flight
    with store.lock(key):
        record = store.lookup(key)
        if record is not None:
            return Outcome(_refs(store, record), record.provenance, provider_calls=0, cost_usd=0.0)
        rejection = store.rejection(key)
        if rejection is not None:
            raise ContentRejected(f"{rejection} (recorded earlier; not submitted again)", provider=operation.provider)
        if plan is not None:
            return _planned(operation, plan, price, outputs)
        started = time.monotonic()
        with store.scratch_dir() as scratch:
            try:
                generation = make(scratch)
            except ContentRejected as exc:
                store.save_rejection(key, operation.provider, str(exc))
                raise
            outputs = []
            try:
                for produced in generation.files:
                    media = probe(produced)
                    sha, _ = store.put(produced)
                    outputs.append(StoredFile(sha256=sha, ext=produced.suffix.lstrip(".").lower(), media=media))
            except BaseException:
                if settlement is not None:
                    settlement.flush()  # paid for, but its output will not be kept: the ledger says so
                raise
        provenance = Provenance(
            stage=operation.stage,
            stage_version=operation.version,
            provider=operation.provider,
            model=generation.model,
            params=operation.params,
            seed=operation.seed,
            inputs=[InputRef(sha256=ref.sha256) for ref in operation.inputs],
            cost_usd=generation.cost_usd,
            request_id=generation.request_id,
            seconds=round(generation.seconds or time.monotonic() - started, 3),
        )
        record = CacheRecord(key=key, outputs=outputs, provenance=provenance)
        store.save(record, durable=operation.provider not in UNPAID,
                   also=None if settlement is None else settlement.commit)
        calls = 0 if operation.provider == MEDIA else 1
        return Outcome(_refs(store, record), provenance, provider_calls=calls, cost_usd=generation.cost_usd, made=True)
