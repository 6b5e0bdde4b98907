"""Benchmark: bounding concurrent provider calls across processes and hosts: reelflow's flock slots and Postgres lease
slots against Prefect's global concurrency limits on a SQLite-backed and on a Postgres-backed Prefect server.

Every engine runs the same workload: calls of a few tenths of a second (time.sleep) under a limit of `--limit`, from
spawned processes that stand for hosts, every thread asking at once. The engines are

    flock       `reelflow.state.limits.provider_slot` on a project with SQLite state: flock'd slot files (one machine);
    pg_lease    `provider_slot` for a fal account (FAL_KEY) on a project whose state is in Postgres: this process's
                gate, then `reelflow.state.leases.slot` on its `PostgresDatabase` (leased rows in reelflow.slots,
                polled 5 ms -> 250 ms), what hosts sharing one database take;
    gcl_sqlite  `prefect.concurrency.sync.concurrency(name, occupy=1, strict=True)` on a global concurrency limit of a
                Prefect server on SQLite (reelflow's local server);
    gcl_pg      the same on a second Prefect server whose database is Postgres (PREFECT_SERVER_DATABASE_CONNECTION_URL).

Postgres is a throwaway cluster on loopback with its default durability (bench/hosts.py); each engine's limit is
created for the run (a Prefect limit, a fal account of its own). The scenarios:

    1 proc x N threads   `--calls` calls of `--call-s` s from one process (its threads share the process's gate);
    P procs x T threads  `--host-calls` calls from `--processes` processes, once per length in `--host-call-s`: here a
                         freed slot goes to another process (another host): the hand-off is what a limit costs.

For a call of 30-300 s, what matters is the hand-off (from one call's end to the next waiting call's start: the k-th
grant after the first `limit` against the (k - limit)-th end, both in time order) and that no more than `limit` calls
are ever in flight (checked from every call's grant and end times, across processes; exits 1 if not). For each
scenario it prints the wall, the ideal (ceil(calls / limit) x call-s), the mean acquisition delay (grant - ask, less
the wait an ideal scheduler imposes), the hand-off's mean, 95th percentile and maximum, the most calls in flight, and
for Prefect the 423 Locked answers, their mean Retry-After and the 5xx answers. Last, each engine's hand-off as a
share of a 30 s and a 300 s call, and which is faster and holds. A lease's hand-off is bounded by its poll (a waiter
tries at least every 250 ms): its measure at a few tenths of a second holds for long calls. Prefect's waiters sleep
the server's Retry-After, drawn around the limit's mean occupancy x (1 + denied slots) / limit (capped at 30 s), an
occupancy that starts at 2 s and follows the calls' lengths: its hand-off at long calls is at least what is measured
here, so its share is printed as a floor.

    .venv/bin/python bench/limits.py [--limit 2] [--calls 12] [--call-s 0.2] [--processes 4] [--host-calls 24]
                                     [--host-call-s 0.1,0.4] [--engines flock,pg_lease,gcl_sqlite,gcl_pg]

Prefect's servers and Postgres are started here and stopped at the end: 10-20 s, and a minute and a half in all on
two cores.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from hosts import new_database, postgres  # noqa: E402

from reelflow.cli import server  # noqa: E402 - no Prefect import: each child sets its server's address first

ENGINES = ("flock", "pg_lease", "gcl_sqlite", "gcl_pg")
PREFECT_ENGINES = ("gcl_sqlite", "gcl_pg")
LONG_CALLS_S = (30.0, 300.0)
PREFECT_MAX_WAIT_S = 30.0  # Prefect's server.concurrency.maximum_concurrency_slot_wait_seconds (its default)
LEASE_MAX_POLL_S = 0.25  # reelflow.state.leases.MAX_POLL_S


@dataclass(frozen=True)
class Call:
    """Monotonic timestamps of one call (one clock for every process of the machine): slot asked for, granted, call
    over, slot given back."""

    asked: float
    granted: float
    ended: float
    released: float


@dataclass
class Outcome:
    """What one engine did in one scenario."""

    calls: list[Call] = field(default_factory=list)
    answers: list[tuple[int, float]] = field(default_factory=list)  # (status, Retry-After) of each 423/5xx


@dataclass(frozen=True)
class Engine:
    """Where one engine's slots live: the environment its processes need and what `_slot_factory` opens."""

    name: str
    env: dict[str, str]
    target: str  # a state folder (flock, pg_lease) or a Prefect limit's name


_ANSWERS: list[tuple[int, float]] = []


def _slot_factory(engine: Engine, limit: int) -> Callable[[], AbstractContextManager[None]]:
    """A function opening one slot of the engine."""
    if engine.name in PREFECT_ENGINES:
        from prefect.concurrency.sync import concurrency

        return lambda: concurrency(engine.target, occupy=1, strict=True)
    from reelflow.state.limits import provider_slot

    state_dir = Path(engine.target)
    provider = "fal" if engine.name == "pg_lease" else "bench"  # fal: an account (FAL_KEY); bench: the project's own
    limits = {provider: limit}
    return lambda: provider_slot(state_dir, provider, limits)


def _record_answers() -> None:
    """Note every 423/5xx answer to a concurrency-limit request, below Prefect's own retries (once per process)."""
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


def _warm_up(engine: Engine) -> None:
    """Import the engine and reach its server or database once, so the timed part measures acquisition only."""
    if engine.name in PREFECT_ENGINES:
        logging.getLogger("EventsWorker").setLevel(logging.ERROR)  # "Still processing items" at exit: not ours
        from prefect.client.orchestration import get_client

        _record_answers()
        with get_client(sync_client=True) as client:
            client.read_global_concurrency_limit_by_name(engine.target)
    elif engine.name == "pg_lease":
        from reelflow.state.db import database

        database(Path(engine.target)).row("SELECT 1 AS one")


def _run_threads(engine: Engine, limit: int, threads: int, call_s: float, ready: Any) -> Outcome:
    """One call per thread, all asking at once (after `ready.wait()`: every process ready); every call's times."""
    _warm_up(engine)
    seen = len(_ANSWERS)
    slot = _slot_factory(engine, limit)
    start = threading.Barrier(threads, action=ready.wait)
    lock = threading.Lock()
    outcome = Outcome()
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


def _child(engine: Engine, limit: int, threads: int, call_s: float, ready: Any, results: Any) -> None:
    """A process (a host): its engine's environment set before anything reads it, warm up, wait for the others, run."""
    for name in ("REELFLOW_STATE_URL", "REELFLOW_BLOB_URL", "PREFECT_API_URL", "FAL_KEY"):  # only the engine's own
        os.environ.pop(name, None)
    os.environ.update(engine.env)
    try:
        outcome = _run_threads(engine, limit, threads, call_s, ready)
        results.put(("ok", outcome.calls, outcome.answers))
    except BaseException as exc:
        results.put(("error", repr(exc), []))
    finally:
        if "prefect" in sys.modules:  # let Prefect's background services finish while the server still answers
            from prefect._internal.concurrency.services import _QueueServiceBase

            _QueueServiceBase.drain_all(timeout=10)


def run_processes(engine: Engine, limit: int, processes: int, threads: int, call_s: float) -> Outcome:
    """`processes` spawned processes of `threads` threads each, started together."""
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(processes, timeout=300)
    results = context.SimpleQueue()
    children = [context.Process(target=_child, args=(engine, limit, threads, call_s, ready, results))
                for _ in range(processes)]
    for child in children:
        child.start()
    outcome = Outcome()
    for _ in children:
        status, calls, answers = results.get()
        if status != "ok":
            raise RuntimeError(f"{engine.name} child failed: {calls}")
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


def hand_offs(calls: list[Call], limit: int) -> list[float]:
    """From a call's end to the start of the call its slot let in: the k-th grant (k >= limit) against the
    (k - limit)-th end, both in time order (every call asked at the start, so a waiter was always there)."""
    grants = sorted(c.granted for c in calls)
    ends = sorted(c.ended for c in calls)
    return [grants[k] - ends[k - limit] for k in range(limit, len(grants))]


@dataclass(frozen=True)
class Row:
    scenario: str
    engine: str
    call_s: float
    processes: int
    wall: float
    ideal: float
    delay: float
    hand_offs: list[float]
    holders: int
    locked: int
    retry_after: float
    unavailable: int

    @property
    def ratio(self) -> float:
        return self.wall / self.ideal

    @property
    def hand_off(self) -> float:
        return statistics.mean(self.hand_offs)

    def percentile(self, share: float) -> float:
        ordered = sorted(self.hand_offs)
        return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def summarise(scenario: str, engine: str, processes: int, outcome: Outcome, limit: int, call_s: float) -> Row:
    calls = outcome.calls
    retry = [after for status, after in outcome.answers if status == 423]
    return Row(
        scenario, engine, call_s, processes,
        max(c.released for c in calls) - min(c.asked for c in calls),
        math.ceil(len(calls) / limit) * call_s,
        mean_acquisition_delay(calls, limit, call_s),
        hand_offs(calls, limit),
        max_in_flight(calls),
        len(retry),
        sum(retry) / len(retry) if retry else 0.0,
        sum(1 for status, _ in outcome.answers if status >= 500),
    )


def create_limit(api: str, name: str, limit: int) -> None:
    httpx.post(f"{api}/v2/concurrency_limits/", json={"name": name, "limit": limit}, timeout=60).raise_for_status()


def delete_limit(api: str, name: str) -> None:
    httpx.delete(f"{api}/v2/concurrency_limits/{name}", timeout=60).raise_for_status()


HEADER = (f"{'scenario':<28}{'engine':<12}{'wall s':>8}{'ideal s':>8}{'wall/ideal':>11}{'acq delay s':>12}"
          f"{'hand-off ms: mean':>18}{'p95':>7}{'max':>7}{'max held':>12}{'423s':>6}{'Retry-After s':>14}{'5xx':>5}")


def print_header() -> None:
    print(HEADER)
    print("-" * len(HEADER))


def print_row(row: Row, limit: int) -> bool:
    """One row of the table; False if the engine let more than `limit` calls run at once."""
    bounded = row.holders <= limit
    prefect = row.engine in PREFECT_ENGINES
    print(f"{row.scenario:<28}{row.engine:<12}{row.wall:>8.2f}{row.ideal:>8.2f}{row.ratio:>11.2f}{row.delay:>12.3f}"
          f"{row.hand_off * 1000:>18.0f}{row.percentile(0.95) * 1000:>7.0f}{max(row.hand_offs) * 1000:>7.0f}"
          f"{row.holders:>6} {'ok' if bounded else 'OVER':<5}{str(row.locked) if prefect else '-':>6}"
          f"{f'{row.retry_after:.2f}' if row.locked else '-':>14}{str(row.unavailable) if prefect else '-':>5}",
          flush=True)
    return bounded


def long_call_overhead(rows: list[Row], limit: int) -> None:
    """Each engine's hand-off as a share of a 30 s and a 300 s call, from the hosts scenarios; the faster that holds."""
    hosts = [row for row in rows if row.processes > 1]
    if not hosts:
        return
    print()
    print(f"hand-off against a call of 30 s and of 300 s (mean hand-off at the longest call of the "
          f"{hosts[0].processes}-process scenarios over the call):")
    verdicts: dict[str, tuple[float, bool]] = {}
    for engine in dict.fromkeys(row.engine for row in hosts):
        mine = sorted((row for row in hosts if row.engine == engine), key=lambda row: row.call_s)
        measured = ", ".join(f"{row.hand_off * 1000:.0f} ms at {row.call_s:g} s" for row in mine)
        holds = all(row.holders <= limit for row in mine)
        shares = [mine[-1].hand_off / call for call in LONG_CALLS_S]
        verdicts[engine] = (shares[0], holds)
        if engine in PREFECT_ENGINES:
            why = ("at least: its waiters sleep a Retry-After that grows with the limit's mean occupancy, "
                   f"min(occupancy x (1 + denied) / limit, {PREFECT_MAX_WAIT_S:g} s), here {mine[-1].retry_after:.2f} s")
        elif engine == "pg_lease":
            why = f"a waiter polls at least every {LEASE_MAX_POLL_S * 1000:.0f} ms, whatever the call"
        else:
            why = "one machine only"
        print(f"  {engine:<11} {measured}: {shares[0]:.3%} of 30 s, {shares[1]:.3%} of 300 s; "
              f"{'held the limit' if holds else 'went OVER the limit'} ({why})")
    holding = {engine: share for engine, (share, holds) in verdicts.items() if holds}
    across = {engine: share for engine, share in holding.items() if engine != "flock"}
    for label, engines in (("faster that holds", holding), ("faster that holds across hosts", across)):
        if engines:
            best = min(engines, key=engines.__getitem__)
            others = ", ".join(f"{engine} {share / engines[best]:.0f}x" for engine, share in
                               sorted(engines.items(), key=lambda item: item[1]) if engine != best)
            print(f"{label}: {best} (the others' hand-off against it: {others or 'none measured'})")


def start_servers(work: Path, cluster: str | None, engines: list[str], started: dict[str, server.ServerInfo]) -> None:
    """The Prefect servers the engines need, started side by side into `started`: on SQLite, and on a database of the
    cluster."""
    wanted = {"gcl_sqlite": None, "gcl_pg": cluster}
    errors: list[BaseException] = []

    def start(engine: str) -> None:
        database = wanted[engine]
        try:
            url = None if database is None else new_database(database).replace("postgresql://", "postgresql+asyncpg://")
            started[engine] = server.start_server(work / f"home-{engine}", database=url)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(engine,)) for engine in engines if engine in PREFECT_ENGINES]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=2)
    parser.add_argument("--calls", type=int, default=12, help="calls of the one-process scenario")
    parser.add_argument("--call-s", type=float, default=0.2, help="length of one call there (time.sleep)")
    parser.add_argument("--processes", type=int, default=4, help="processes (hosts) of the hand-off scenarios; 0 skips")
    parser.add_argument("--host-calls", type=int, default=24, help="calls of each hand-off scenario, over the processes")
    parser.add_argument("--host-call-s", default="0.1,0.4", help="lengths of a call in the hand-off scenarios")
    parser.add_argument("--engines", default=",".join(ENGINES))
    args = parser.parse_args()
    engines = [engine.strip() for engine in args.engines.split(",") if engine.strip()]
    if unknown := set(engines) - set(ENGINES):
        parser.error(f"--engines: unknown {', '.join(sorted(unknown))}")
    if args.processes and args.host_calls % args.processes:
        parser.error("--host-calls must be a multiple of --processes")
    host_lengths = [float(length) for length in args.host_call_s.split(",") if length.strip()]

    scenarios = [(f"1 proc x {args.calls} threads, {args.call_s:g} s", 1, args.calls, args.call_s)]
    if args.processes:
        threads = args.host_calls // args.processes
        scenarios += [(f"{args.processes} procs x {threads} threads, {length:g} s", args.processes, threads, length)
                      for length in host_lengths]

    run_id = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix="reelflow-bench-limits-", ignore_cleanup_errors=True) as tmp:
        work = Path(tmp)
        os.environ["REELFLOW_SERVER_PORT"] = "0"  # each server on a free port
        base = {"REELFLOW_HOME": str(work / "home"), "PREFECT_LOGGING_TO_API_ENABLED": "false"}
        needs_pg = bool({"pg_lease", "gcl_pg"} & set(engines))
        with postgres() if needs_pg else nullcontext() as cluster:
            servers: dict[str, server.ServerInfo] = {}
            try:
                started = time.perf_counter()
                start_servers(work, cluster.url if cluster else None, engines, servers)
                state_url = new_database(cluster.url) if "pg_lease" in engines else ""
                pg_project = work / "pg-project"
                pg_project.mkdir()
                (pg_project / "project.json").write_text(json.dumps({"code": "BENCH"}))
                print(f"limit {args.limit}; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; Python "
                      f"{sys.version.split()[0]}; servers and Postgres up in {time.perf_counter() - started:.0f} s",
                      flush=True)
                print_header()
                rows, ok = [], True
                for index, (scenario, processes, threads, call_s) in enumerate(scenarios):
                    for name in engines:
                        if name in PREFECT_ENGINES:
                            api = servers[name].api_url
                            engine = Engine(name, base | server.prefect_env(servers[name].home) | {"PREFECT_API_URL": api},
                                            f"bench-{run_id}-{index}")
                            create_limit(api, engine.target, args.limit)
                        elif name == "pg_lease":
                            engine = Engine(name, base | {"REELFLOW_STATE_URL": state_url,
                                                          "FAL_KEY": f"bench-{run_id}-{index}"},
                                            str(pg_project / ".reelflow"))
                        else:
                            engine = Engine(name, base, str(work / f"flock-{index}" / ".reelflow"))
                        try:
                            outcome = run_processes(engine, args.limit, processes, threads, call_s)
                        finally:
                            if name in PREFECT_ENGINES:
                                delete_limit(servers[name].api_url, engine.target)
                        rows.append(row := summarise(scenario, name, processes, outcome, args.limit, call_s))
                        ok &= print_row(row, args.limit)
                long_call_overhead(rows, args.limit)
            finally:
                for info in servers.values():
                    server.stop_server(info.home)
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
