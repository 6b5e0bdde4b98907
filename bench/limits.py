"""Benchmark: bounding concurrent provider calls with Prefect's global concurrency limits against reelflow's flock slots.

Both engines run the same workload: `--calls` calls of `--call-s` seconds each (time.sleep) under a limit of
`--limit`, first from one process with one thread per call, then (unless `--processes 0`) from `--processes`
processes sharing the calls' threads evenly. The engines are

    prefect_gcl  `prefect.concurrency.sync.concurrency(name, occupy=1, strict=True)` on a global concurrency limit
                 created for the run (and deleted after it) on reelflow's local Prefect server;
    flock        `reelflow.state.limits.provider_slot(state_dir, provider, limits)`: flock'd slot files.

For each engine it prints the wall time (first ask to last release), the ideal (ceil(calls / limit) x call-s),
their ratio, the mean acquisition delay per call (ask to grant, less the wait an ideal scheduler would impose:
the i-th call granted can start no earlier than (i // limit) x call-s after the first ask), the most calls
observed in flight at once (checked <= limit from every call's grant/end times; exits 1 if not), the mean
time from a call's end to its slot being given back, and for Prefect the 423 Locked answers the server gave,
their mean Retry-After, and the 5xx answers (SQLite busy: 503, which Prefect's client retries after ~2 s).
It ends with `prefect_gcl / flock wall ratio: X.X` for the one-process run.

Run it from the repository root:
    .venv/bin/python bench/limits.py [--calls 12] [--call-s 0.2] [--limit 2] [--processes 2]

It uses PREFECT_API_URL if set, else reelflow's local server for REELFLOW_HOME (a temporary home, on a free
port, when REELFLOW_HOME is unset); a server it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import logging
import math
import multiprocessing
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reelflow.cli import server
from reelflow.state.limits import provider_slot

PROVIDER = "bench"
ENGINES = ("prefect_gcl", "flock")


@dataclass(frozen=True)
class Call:
    """Monotonic timestamps of one call: slot asked for, granted, call over, slot given back."""

    asked: float
    granted: float
    ended: float
    released: float


@dataclass
class Outcome:
    """What one engine did in one scenario."""

    calls: list[Call] = field(default_factory=list)
    answers: list[tuple[int, float]] = field(default_factory=list)  # (status, Retry-After) of each 423/5xx


_ANSWERS: list[tuple[int, float]] = []


def _quiet_events_worker() -> None:
    """Prefect's EventsWorker warns "Still processing items" when it flushes queued events at exit; not ours to report."""
    logging.getLogger("EventsWorker").setLevel(logging.ERROR)


def _slot_factory(engine: str, target: str, limit: int) -> Callable[[], AbstractContextManager[None]]:
    """A function opening one slot of the engine: `target` is the limit name (prefect_gcl) or state dir (flock)."""
    if engine == "flock":
        state_dir, limits = Path(target), {PROVIDER: limit}
        return lambda: provider_slot(state_dir, PROVIDER, limits)
    from prefect.concurrency.sync import concurrency

    return lambda: concurrency(target, occupy=1, strict=True)


def _record_answers() -> None:
    """Note every 423/5xx answer to a concurrency-limit request, below Prefect's own retries (once per process)."""
    import httpx

    send = httpx.AsyncClient.send
    if getattr(send, "_bench_recorded", False):
        return

    async def recorded(self: httpx.AsyncClient, request: httpx.Request, *args: Any, **kwargs: Any) -> httpx.Response:
        response = await send(self, request, *args, **kwargs)
        if "/concurrency_limits/" in request.url.path and (response.status_code == 423 or response.status_code >= 500):
            _ANSWERS.append((response.status_code, float(response.headers.get("Retry-After", "nan"))))
        return response

    recorded._bench_recorded = True  # type: ignore[attr-defined]
    httpx.AsyncClient.send = recorded  # type: ignore[method-assign]


def _warm_up(engine: str, target: str) -> None:
    """Import the engine and, for Prefect, reach the server once, so the timed part measures acquisition only."""
    if engine == "prefect_gcl":
        _quiet_events_worker()
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            client.read_global_concurrency_limit_by_name(target)


def _run_threads(engine: str, target: str, limit: int, threads: int, call_s: float, ready: Any = None) -> Outcome:
    """One call per thread, all asking at once (after `ready.wait()`, if given); returns every call's timestamps."""
    outcome = Outcome()
    if engine == "prefect_gcl":
        _record_answers()
    _warm_up(engine, target)
    seen = len(_ANSWERS)
    slot = _slot_factory(engine, target, limit)
    start = threading.Barrier(threads, action=ready.wait if ready is not None else None)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def one_call() -> None:
        try:
            start.wait()
            asked = time.monotonic()
            with slot():
                granted = time.monotonic()
                time.sleep(call_s)
                ended = time.monotonic()
            released = time.monotonic()
            with lock:
                outcome.calls.append(Call(asked, granted, ended, released))
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=one_call) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    outcome.answers = _ANSWERS[seen:]
    return outcome


def _child(engine: str, target: str, limit: int, threads: int, call_s: float, ready: Any, results: Any) -> None:
    """A process of the multi-process scenario: warm up, wait for the other processes, run its threads, report."""
    try:
        outcome = _run_threads(engine, target, limit, threads, call_s, ready)
        results.put(("ok", outcome.calls, outcome.answers))
    except BaseException as exc:
        results.put(("error", repr(exc), []))


def _run_processes(engine: str, target: str, limit: int, processes: int, threads: int, call_s: float) -> Outcome:
    """`processes` spawned processes of `threads` threads each, started together."""
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(processes, timeout=120)
    results = context.SimpleQueue()
    children = [
        context.Process(target=_child, args=(engine, target, limit, threads, call_s, ready, results)) for _ in range(processes)
    ]
    for child in children:
        child.start()
    outcome = Outcome()
    for _ in children:
        status, calls, answers = results.get()
        if status != "ok":
            raise RuntimeError(f"{engine} child failed: {calls}")
        outcome.calls.extend(calls)
        outcome.answers.extend(answers)
    for child in children:
        child.join()
    return outcome


def max_in_flight(calls: list[Call]) -> int:
    """The most calls between grant and end at any instant (an end at t comes before a grant at t)."""
    events = sorted([(c.granted, 1) for c in calls] + [(c.ended, -1) for c in calls], key=lambda e: (e[0], e[1]))
    most = current = 0
    for _, step in events:
        current += step
        most = max(most, current)
    return most


def mean_acquisition_delay(calls: list[Call], limit: int, call_s: float) -> float:
    """Mean of (grant - ask) less the wait an ideal scheduler imposes on the i-th call granted."""
    first = min(c.asked for c in calls)
    delays = []
    for index, call in enumerate(sorted(calls, key=lambda c: c.granted)):
        earliest = max(call.asked, first + (index // limit) * call_s)
        delays.append(call.granted - earliest)
    return sum(delays) / len(delays)


@dataclass(frozen=True)
class Row:
    scenario: str
    engine: str
    wall: float
    ideal: float
    delay: float
    release: float
    holders: int
    locked: int
    retry_after: float
    unavailable: int

    @property
    def ratio(self) -> float:
        return self.wall / self.ideal


def summarise(scenario: str, engine: str, outcome: Outcome, limit: int, call_s: float) -> Row:
    calls = outcome.calls
    wall = max(c.released for c in calls) - min(c.asked for c in calls)
    ideal = math.ceil(len(calls) / limit) * call_s
    retry = [after for status, after in outcome.answers if status == 423]
    return Row(
        scenario,
        engine,
        wall,
        ideal,
        mean_acquisition_delay(calls, limit, call_s),
        sum(c.released - c.ended for c in calls) / len(calls),
        max_in_flight(calls),
        len(retry),
        sum(retry) / len(retry) if retry else 0.0,
        sum(1 for status, _ in outcome.answers if status >= 500),
    )


def create_limit(name: str, limit: int) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=limit))


def delete_limit(name: str) -> None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        client.delete_global_concurrency_limit_by_name(name)


def drain_prefect() -> None:
    """Let Prefect's background services (slot acquisition, events) finish while the server still answers."""
    if "prefect" in sys.modules:
        from prefect._internal.concurrency.services import _QueueServiceBase

        _QueueServiceBase.drain_all(timeout=10)


def run_scenario(scenario: str, processes: int, args: argparse.Namespace, work: Path, run_id: str) -> list[Row]:
    """Both engines on one scenario: one process (`processes == 0`) or several."""
    rows = []
    for engine in ENGINES:
        if engine == "prefect_gcl":
            target = f"bench-limits-{run_id}-{processes}p"
            create_limit(target, args.limit)
        else:
            target = str(work / f"state-{processes}p")
        try:
            if processes:
                outcome = _run_processes(engine, target, args.limit, processes, args.calls // processes, args.call_s)
            else:
                outcome = _run_threads(engine, target, args.limit, args.calls, args.call_s)
        finally:
            if engine == "prefect_gcl":
                delete_limit(target)
        rows.append(summarise(scenario, engine, outcome, args.limit, args.call_s))
    return rows


def report(rows: list[Row], limit: int) -> bool:
    """Print the table; False if any engine let more than `limit` calls run at once."""
    header = (
        f"{'scenario':<22}{'engine':<13}{'wall s':>8}{'ideal s':>9}{'wall/ideal':>12}{'mean acq delay s':>18}"
        f"{'mean release s':>16}{'max holders':>13}{'423s':>6}{'mean Retry-After s':>20}{'5xx':>5}"
    )
    print(header)
    print("-" * len(header))
    ok = True
    for row in rows:
        bounded = row.holders <= limit
        ok &= bounded
        holders = f"{row.holders:>6} {'ok' if bounded else 'OVER':<6}"
        prefect = row.engine == "prefect_gcl"
        locked = str(row.locked) if prefect else "-"
        retry = f"{row.retry_after:.2f}" if row.locked else "-"
        unavailable = str(row.unavailable) if prefect else "-"
        print(
            f"{row.scenario:<22}{row.engine:<13}{row.wall:>8.2f}{row.ideal:>9.2f}{row.ratio:>12.1f}{row.delay:>18.3f}"
            f"{row.release:>16.3f}{holders}{locked:>6}{retry:>20}{unavailable:>5}"
        )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=12)
    parser.add_argument("--call-s", type=float, default=0.2, help="length of one provider call (time.sleep)")
    parser.add_argument("--limit", type=int, default=2)
    parser.add_argument("--processes", type=int, default=2, help="processes for the second scenario; 0 skips it")
    args = parser.parse_args()
    if args.processes and args.calls % args.processes:
        parser.error("--calls must be a multiple of --processes")

    with tempfile.TemporaryDirectory(prefix="reelflow-bench-limits-", ignore_cleanup_errors=True) as tmp:
        work = Path(tmp)
        if not os.environ.get("REELFLOW_HOME"):
            os.environ["REELFLOW_HOME"] = str(work / "home")
            os.environ.setdefault("REELFLOW_SERVER_PORT", "0")
        home = server.reelflow_home()
        started = not os.environ.get("PREFECT_API_URL") and server.running_server(home) is None
        api_url = server.connect()
        try:
            import prefect

            run_id = uuid.uuid4().hex[:8]
            print(
                f"{args.calls} calls x {args.call_s:.2f} s under a limit of {args.limit}; "
                f"Prefect {prefect.__version__} at {api_url}; Python {sys.version.split()[0]}"
            )
            rows = run_scenario(f"{args.calls} threads", 0, args, work, run_id)
            if args.processes:
                threads = args.calls // args.processes
                rows += run_scenario(f"{args.processes} procs x {threads} threads", args.processes, args, work, run_id)
            ok = report(rows, args.limit)
            by_key = {(row.scenario, row.engine): row for row in rows}
            print()
            if args.processes:
                scenario = rows[-1].scenario
                ratio = by_key[scenario, "prefect_gcl"].wall / by_key[scenario, "flock"].wall
                print(f"prefect_gcl / flock wall ratio ({scenario}): {ratio:.1f}")
            threads_scenario = rows[0].scenario
            ratio = by_key[threads_scenario, "prefect_gcl"].wall / by_key[threads_scenario, "flock"].wall
            print(f"prefect_gcl / flock wall ratio: {ratio:.1f}")
        finally:
            drain_prefect()
            if started:
                server.stop_server(home)
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
