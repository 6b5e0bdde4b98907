"""Benchmark: hosts sharing one Postgres (state) and one S3 (blobs): the project's write lock, and 200 shots rendered
by two hosts at once.

1. The write lock. Every write transaction of a project takes its advisory lock (state/db.py), so a project's writes
   are one queue whatever the hosts. Processes stand for hosts and loop over what one paid provider call writes, by
   the product's own functions on a `PostgresDatabase`: its budget reservation (the project has a budget: the caps
   are summed from the ledger inside the lock), its cache key's lock, an account slot, the ledger row as
   `submitting`, `pending`, then `completed` with its cache entry, the slot and key lock given back: 8 transactions,
   the reservation and the three ledger writes durable. The ledger holds a season's rows first (`--ledger-rows`):
   the budget's sums read them all. Printed: paid calls per second, transactions and rows written per second (from
   Postgres's own counters), for one process of one thread (each transaction waiting for the last), for `--writers`
   processes of `--threads` threads on one project, the same while `--waiters` calls poll a fal account whose slots
   are all held (each poll, every 250 ms at most, is a write transaction of the project), and the writers split over
   two projects (two locks). Then a budget's reservation alone, at an empty ledger, a season's and ten seasons'.

2. Two hosts render 200 shots. Each host is a process of its own calling the render flow (as bench/episode.py does),
   with a home and a checkout of its own (copies of one project: the example's EP1 shots cycled to `--episodes`
   episodes, each shot's seed its own), sharing one Postgres
   (REELFLOW_STATE_URL), one S3 (moto's server, REELFLOW_BLOB_URL) and one Prefect server; the hosts render their
   share of the episodes one after another, both starting at once. The local provider waits each call's service
   time over a divisor chosen so each episode's bound (max(critical path, work / concurrency), bench/episode.py) is
   `--seconds-per-shot` per shot, draws at an eighth of the product's sizes and replays its clips. The local
   provider's slots are each checkout's own files (it has no account): each host runs `concurrency` calls at once.
   Printed: each host's wall against its bound, the whole wall, the rows Postgres wrote (by table, per shot and per
   second), its commits (reads included), the state transactions the hosts made (durable writes, other writes,
   reads: counted in each host), the ledger's calls per shot by stage, the objects and bytes in S3 per shot, the CPU
   of each process, and the content made twice (none should be: a cache key's lock spans the hosts).

Postgres is a throwaway cluster with its default durability (a durable commit waits for this machine's disk); moto
runs in its own process (these two helpers serve bench/limits.py and bench/s3_render.py too). Everything runs on this
machine: its cores are shared by the hosts, the Prefect server, Postgres and moto, as a studio's machines would not
be.

    .venv/bin/python bench/hosts.py [--shots 200] [--hosts 2] [--episodes 4] [--seconds-per-shot 0.6]
                                    [--writers 4] [--threads 4] [--waiters 24] [--lock-s 5] [--ledger-rows 10800]
                                    [--only lock|render]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "tests"))  # the tests' Postgres binaries and S3 environment
sys.path.insert(0, str(BENCH))

from postgres import BIN, NO_POSTGRES, Cluster, free_port, new_database, running_cluster  # noqa: E402
from s3 import make_bucket, s3_env  # noqa: E402

BUCKET = "reelflow-studio"
CODE = "LEV"  # the example's project code: its schema reelflow_lev, its folder in S3
PRICE_USD = 0.05
RECORD = "x" * 1200  # about a cache record's JSON (outputs, provenance)
SMALL = {"REELFLOW_FRAME_SCALE": "0.125", "REELFLOW_X264_PRESET": "ultrafast", "REELFLOW_LOCAL_VIDEO": "replay",
         "PREFECT_LOGGING_TO_API_ENABLED": "false", "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL"}


@contextmanager
def postgres() -> Iterator[Cluster]:
    """A throwaway cluster with Postgres's own durability (fsync, synchronous_commit and full-page writes on, unlike
    the tests' cluster): a durable commit here waits for this machine's disk as it would on a studio's server."""
    if BIN is None:
        sys.exit(NO_POSTGRES)
    with running_cluster(durable=True) as cluster:
        yield cluster


@contextmanager
def moto(bucket: str) -> Iterator[tuple[str, int]]:
    """moto's S3 server in a process of its own (its CPU apart from the render's, as S3 is), with `bucket` made;
    yields its URL and pid."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"moto's S3 server did not start on port {port}")
                time.sleep(0.2)
        make_bucket(url, bucket)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def process_cpu(pid: int | None, *, waited: bool = False) -> float:
    """CPU seconds another process (a server) has used so far, and with `waited` its ended children's; 0 where it
    cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return 0.0
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if waited else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def postgres_cpu(cluster: Cluster) -> float:
    """The cluster's CPU so far: the postmaster with its ended backends, and the processes still running under it."""
    from reelflow.cli.studio import descendants

    return process_cpu(cluster.pid, waited=True) + sum(process_cpu(pid) for pid in descendants(cluster.pid))


def cpu_seconds() -> float:
    """CPU this process and its ended children (ffmpeg) have used."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


# -- Postgres's own counters ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Counters:
    """What Postgres has counted for one database: transactions committed, rows written by table, its size."""

    commits: int
    rows: dict[str, int]  # schema.table: inserted + updated + deleted
    bytes: int

    def __sub__(self, other: Counters) -> Counters:
        return Counters(self.commits - other.commits,
                        {table: count - other.rows.get(table, 0) for table, count in self.rows.items()},
                        self.bytes - other.bytes)

    @property
    def written(self) -> int:
        return sum(self.rows.values())


def counters(url: str) -> Counters:
    """The database's counters now (each backend reports its own when its transaction ends or it goes: read them
    once the processes that wrote have ended, or a second after)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        commits = connection.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
                                     ).fetchone()[0]  # type: ignore[index]
        rows = {f"{schema}.{table}": int(written) for schema, table, written in connection.execute(
            "SELECT schemaname, relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables").fetchall()}
        size = connection.execute("SELECT pg_database_size(current_database())").fetchone()[0]  # type: ignore[index]
    return Counters(int(commits), rows, int(size))


# -- 1. the write lock ----------------------------------------------------------------------------------------------

def prefill(url: str, code: str, rows: int) -> None:
    """A season's ledger: `rows` settled paid requests (and their cache entries) in the project's schema."""
    from reelflow.state.db import PostgresDatabase, schema_name

    db = PostgresDatabase(url, schema_name(code))
    with db.pool.connection() as connection, connection.transaction():
        connection.execute(
            "INSERT INTO requests (cache_key, provider, endpoint, request_id, status, price_usd, cost_usd, shadow, run, "
            "stage, episode, shot, submitted_at, settled_at) SELECT md5(i::text), 'fal', 'fal-ai/bench', 'season-' || i, "
            "'completed', %s, %s, 0, 'season', 'bench', i / 180 + 1, i %% 30 + 1, 0, 0 FROM generate_series(1, %s) i",
            (PRICE_USD, PRICE_USD, rows))
        connection.execute("INSERT INTO cache (cache_key, record, created_at) SELECT md5(i::text), %s, 0 "
                           "FROM generate_series(1, %s) i", (RECORD, rows))
    with db.pool.connection() as connection:
        connection.execute("ANALYZE")
    db.pool.close()


def paid_call(db: Any, account: str, slots: int, key: str) -> None:
    """What one paid provider call writes, in the order a render writes it (the call itself takes no time here)."""
    from reelflow.state.budget import Budgets, Caps
    from reelflow.state.leases import key_lock, slot
    from reelflow.state.ledger import Charge, Ledger

    reservation = Budgets(db).reserve("bench", PRICE_USD, Caps(project_usd=1e9))
    with key_lock(db, key), slot(db, account, slots):
        charge = Charge(run="bench", stage="bench", episode=1, shot=1, price_usd=PRICE_USD, reservation=reservation)
        ticket = Ledger(db).ticket(key, "fal", charge, deferred=True)
        with ticket.sending("fal-ai/bench") as sending:
            sending.accepted(f"request-{key}")
        ticket.completed("fal-ai/bench", f"request-{key}", PRICE_USD)
        with db.write() as sql:  # as AssetStore.save: the completion with its cache entry
            ticket.commit(sql)
            sql.execute("INSERT INTO cache (cache_key, record, created_at) VALUES (?, ?, ?) ON CONFLICT (cache_key) "
                        "DO UPDATE SET record = excluded.record", (key, RECORD, time.time()))


def _writer(url: str, code: str, threads: int, slots: int, seconds: float, ready: Any, results: Any) -> None:
    """A process (a host): `threads` threads making paid calls' writes until `seconds` are over."""
    import uuid

    from reelflow.state.db import PostgresDatabase, schema_name

    os.environ["REELFLOW_PG_POOL"] = str(max(8, threads))
    db = PostgresDatabase(url, schema_name(code))
    db.row("SELECT 1 AS one")
    done: list[float] = []
    start = threading.Barrier(threads, action=ready.wait)

    def loop() -> None:
        start.wait()
        deadline = time.monotonic() + seconds
        while (began := time.monotonic()) < deadline:
            paid_call(db, "fal:bench", slots, uuid.uuid4().hex)
            done.append(time.monotonic() - began)

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    db.pool.close()
    results.put(done)


def _poller(url: str, code: str, limit: int, waiters: int, ready: Any) -> None:
    """A process whose threads hold every slot of an account and whose `waiters` more threads poll for one, until it is
    ended (calls waiting on a full account: every poll is a write transaction of the project)."""
    from reelflow.state.db import PostgresDatabase, schema_name
    from reelflow.state.leases import slot

    db = PostgresDatabase(url, schema_name(code))
    held, never = threading.Barrier(limit + 1), threading.Event()

    def hold() -> None:
        with slot(db, "fal:full", limit):
            held.wait()
            never.wait()

    def wait() -> None:
        with slot(db, "fal:full", limit):
            pass

    for _ in range(limit):
        threading.Thread(target=hold, daemon=True).start()
    held.wait()
    for _ in range(waiters):
        threading.Thread(target=wait, daemon=True).start()
    time.sleep(1.0)  # the waiters' polls at their slowest pace
    ready.wait()
    never.wait()


def lock_row(label: str, url: str, codes: list[str], writers: int, threads: int, seconds: float,
             waiters: int = 0) -> dict:
    """`writers` spawned processes of `threads` threads, spread over the projects `codes`, for `seconds`; with
    `waiters`, that many calls poll a full account of 8 slots meanwhile (from one more process)."""
    context = multiprocessing.get_context("spawn")
    ready, results = context.Barrier(writers + 1 + bool(waiters), timeout=120), context.SimpleQueue()
    processes = [context.Process(target=_writer, args=(url, codes[index % len(codes)], threads, writers * threads,
                                                       seconds, ready, results)) for index in range(writers)]
    poller = context.Process(target=_poller, args=(url, codes[0], 8, waiters, ready)) if waiters else None
    for process in processes + ([poller] if poller else []):
        process.start()
    ready.wait()  # every writer connected
    before = counters(url)
    started = time.monotonic()
    latencies = [latency for _ in processes for latency in results.get()]
    for process in processes:
        process.join()
    wall = time.monotonic() - started
    if poller is not None:
        poller.terminate()
        poller.join()
    time.sleep(1.0)  # every backend's counters reported
    delta = counters(url) - before
    calls = len(latencies)
    return {"label": label, "calls": calls, "calls_per_s": calls / wall, "commits_per_s": delta.commits / wall,
            "rows_per_s": delta.written / wall, "ms_per_call": statistics.median(latencies) * 1000,
            "p95_ms": sorted(latencies)[int(0.95 * (calls - 1))] * 1000}


def write_lock(url: str, args: argparse.Namespace) -> list[dict]:
    for code in ("LOCKA", "LOCKB"):
        prefill(url, code, args.ledger_rows)
    print(f"write lock: paid calls' writes for {args.lock_s:g} s each, over a ledger of {args.ledger_rows} settled "
          "requests per project", flush=True)
    print(f"{'writers':<66}{'paid calls/s':>13}{'commits/s':>10}{'rows/s':>8}{'ms per call: median':>21}{'p95':>7}")
    rows = []
    many = f"{args.writers} processes x {args.threads} threads"
    for label, codes, writers, threads, waiters in (
        ("1 process x 1 thread, one project", ["LOCKA"], 1, 1, 0),
        (f"{many}, one project", ["LOCKA"], args.writers, args.threads, 0),
        (f"{many}, one project, {args.waiters} calls polling a full account", ["LOCKA"], args.writers, args.threads,
         args.waiters),
        (f"{many}, two projects", ["LOCKA", "LOCKB"], args.writers, args.threads, 0),
    ):
        row = lock_row(label, url, codes, writers, threads, args.lock_s, waiters)
        rows.append(row)
        print(f"{label:<66}{row['calls_per_s']:>13.1f}{row['commits_per_s']:>10.0f}{row['rows_per_s']:>8.0f}"
              f"{row['ms_per_call']:>21.1f}{row['p95_ms']:>7.1f}", flush=True)
    print("a budget's reservation and release, one after another (its transaction sums the ledger inside the lock): "
          + ", ".join(f"{reservation_ms(url, rows):.1f} ms at {rows} ledger rows" for rows in (0, args.ledger_rows,
                                                                                             10 * args.ledger_rows)),
          flush=True)
    return rows


def reservation_ms(url: str, rows: int) -> float:
    """The median time of `Budgets.reserve` and `release` under a project budget, over a ledger of `rows` requests."""
    from reelflow.state.budget import Budgets, Caps
    from reelflow.state.db import PostgresDatabase, schema_name

    code = f"BUDGET{rows}"
    if rows:
        prefill(url, code, rows)
    db = PostgresDatabase(url, schema_name(code))
    budgets, took = Budgets(db), []
    for _ in range(100):
        started = time.perf_counter()
        budgets.release(budgets.reserve("bench", PRICE_USD, Caps(project_usd=1e9)))
        took.append(time.perf_counter() - started)
    db.pool.close()
    return statistics.median(took) * 1000


# -- 2. two hosts render --------------------------------------------------------------------------------------------

def studio_project(scratch: Path, episodes: int, shots: int, concurrency: int) -> Path:
    """The example with `episodes` storyboards of `shots` shots each (EP1's cycled), every shot's seed its own."""
    from episode import EXAMPLE, QC, storyboard

    project = scratch / "origin"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("assets", ".reelflow", "storyboard_ep_*", "previz"))
    settings = json.loads((project / "project.json").read_text())
    (project / "project.json").write_text(json.dumps(settings | {"concurrency": {"local": concurrency}, "qc": QC}))
    for episode in range(1, episodes + 1):
        board = storyboard(shots)
        board |= {"episode": episode, "shots": [shot | {"seed": episode * 1000 + shot["shot"]} for shot in board["shots"]]}
        (project / "storyboards" / f"storyboard_ep_{episode:03d}.json").write_text(json.dumps(board))
    return project


def count_transactions() -> Counter[str]:
    """Count this process's state transactions from now on: durable and other writes, and reads (outside a write)."""
    from reelflow.state.db import PostgresDatabase

    counts: Counter[str] = Counter()
    guard = threading.Lock()
    write, row, rows = PostgresDatabase.write, PostgresDatabase.row, PostgresDatabase.rows

    def note(kind: str) -> None:
        with guard:
            counts[kind] += 1

    @contextmanager
    def counted_write(self: PostgresDatabase, *, durable: bool = True) -> Iterator[Any]:
        note("durable writes" if durable else "other writes")
        with write(self, durable=durable) as sql:
            yield sql

    def counted_row(self: PostgresDatabase, sql: str, args: tuple[Any, ...] = ()) -> Any:
        if getattr(self._local, "connection", None) is None:
            note("reads")
        return row(self, sql, args)

    def counted_rows(self: PostgresDatabase, sql: str, args: tuple[Any, ...] = ()) -> Any:
        if getattr(self._local, "connection", None) is None:
            note("reads")
        return rows(self, sql, args)

    PostgresDatabase.write, PostgresDatabase.row, PostgresDatabase.rows = (  # type: ignore[method-assign]
        counted_write, counted_row, counted_rows)
    return counts


def host_render(checkout: Path, episodes: list[int]) -> None:
    """In this process (a host): ready, then on a line from the parent, its episodes one after another."""
    from reelflow.cli.server import connect

    connect()
    from reelflow.flows.render import render_episode

    transactions = count_transactions()
    print("ready", flush=True)
    sys.stdin.readline()
    cpu, rendered = cpu_seconds(), []
    for episode in episodes:
        started = time.time()
        report = render_episode(str(checkout), episode)
        rendered.append({"episode": episode, "started": started, "ended": time.time(), "calls": report.provider_calls,
                         "shots": report.shots.total, "rendered": report.shots.rendered, "failed": report.shots.failed})
    print(json.dumps({"episodes": rendered, "cpu_s": cpu_seconds() - cpu, "transactions": dict(transactions),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)


def s3_objects(endpoint: str) -> tuple[int, int]:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="a",
                          aws_secret_access_key="b")
    count = size = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            count, size = count + 1, size + int(item["Size"])
    return count, size


def paid_twice(url: str) -> int:
    """Cache keys with more than one request: content made twice."""
    import psycopg

    from reelflow.state.db import schema_name

    with psycopg.connect(url) as connection:
        return len(connection.execute(f"SELECT cache_key FROM {schema_name(CODE)}.requests WHERE status <> 'cancelled' "
                                      "GROUP BY cache_key HAVING COUNT(*) > 1").fetchall())


def calls_by_stage(url: str) -> list[tuple[str, int]]:
    import psycopg

    from reelflow.state.db import schema_name

    with psycopg.connect(url) as connection:
        return [(str(stage), int(number)) for stage, number in connection.execute(
            f"SELECT stage, COUNT(*) FROM {schema_name(CODE)}.requests GROUP BY stage ORDER BY COUNT(*) DESC").fetchall()]


def two_hosts(cluster: Cluster, endpoint: str, moto_pid: int, scratch: Path, args: argparse.Namespace) -> None:
    from episode import bound, divisor_for

    from reelflow.cli import server

    url = new_database(cluster.url)
    per_episode = args.shots // args.episodes
    origin = studio_project(scratch, args.episodes, per_episode, args.concurrency)
    board = json.loads((origin / "storyboards" / "storyboard_ep_001.json").read_text())
    divisor = divisor_for(board, args.concurrency, args.seconds_per_shot, 0)
    episode_bound = bound(board["shots"], args.concurrency, divisor)[2]
    home = scratch / "prefect-home"
    info = server.start_server(home)
    hosts = []
    try:
        for index in range(args.hosts):
            checkout = scratch / f"host-{index + 1}"
            shutil.copytree(origin, checkout)
            episodes = list(range(index + 1, args.episodes + 1, args.hosts))
            env = os.environ | SMALL | s3_env(endpoint) | {
                "REELFLOW_HOME": str(scratch / f"home-{index + 1}"), "PREFECT_HOME": str(scratch / f"home-{index + 1}"),
                "PREFECT_API_URL": info.api_url, "REELFLOW_STATE_URL": url, "REELFLOW_BLOB_URL": f"s3://{BUCKET}/studio",
                "REELFLOW_LOCAL_LATENCY": f"seed/{divisor:g}"}
            process = subprocess.Popen([sys.executable, __file__, "--host", str(checkout), "--episodes-here",
                                        ",".join(map(str, episodes))], env=env, stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True)
            hosts.append((index + 1, episodes, process))
        for _, _, process in hosts:
            if process.stdout.readline().strip() != "ready":  # type: ignore[union-attr]
                sys.exit("a host did not start")
        before, cpu = counters(url), {"postgres": postgres_cpu(cluster), "prefect": process_cpu(info.pid),
                                      "moto": process_cpu(moto_pid)}
        for _, _, process in hosts:
            process.stdin.write("go\n")  # type: ignore[union-attr]
            process.stdin.flush()  # type: ignore[union-attr]
        results = {}
        for number, _, process in hosts:
            output, _ = process.communicate(timeout=1800)
            if process.returncode:
                sys.exit(f"host {number} failed ({process.returncode})")
            results[number] = json.loads(output.strip().splitlines()[-1])
        cpu = {"postgres": postgres_cpu(cluster) - cpu["postgres"], "prefect": process_cpu(info.pid) - cpu["prefect"],
               "moto": process_cpu(moto_pid) - cpu["moto"]}
        time.sleep(1.0)
        delta = counters(url) - before
    finally:
        for _, _, process in hosts:
            if process.poll() is None:  # a host left running when another failed
                process.kill()
                process.wait()
        server.stop_server(home)
    began = min(e["started"] for r in results.values() for e in r["episodes"])
    ended = max(e["ended"] for r in results.values() for e in r["episodes"])
    wall, shots = ended - began, sum(e["shots"] for r in results.values() for e in r["episodes"])
    print(f"\n{args.hosts} hosts, {shots} shots in {args.episodes} episodes, local provider at concurrency "
          f"{args.concurrency} per host, latency seed/{divisor:g} (each episode's bound {episode_bound:.1f} s)")
    for number, episodes, _ in hosts:
        mine = results[number]["episodes"]
        host_wall = mine[-1]["ended"] - mine[0]["started"]
        host_bound = episode_bound * len(mine)
        print(f"  host {number}: episodes {', '.join(map(str, episodes))}: {host_wall:.1f} s against a bound of "
              f"{host_bound:.1f} s ({host_wall / host_bound:.2f}); {sum(e['calls'] for e in mine)} calls, "
              f"{sum(e['failed'] for e in mine)} failed shots; {results[number]['cpu_s']:.0f} CPU s, peak RSS "
              f"{results[number]['peak_rss_mb']:.0f} MB")
    print(f"  all: {wall:.1f} s for {shots} shots ({shots / wall:.2f} shots/s); CPU s: hosts "
          f"{sum(r['cpu_s'] for r in results.values()):.0f}, Prefect server {cpu['prefect']:.0f}, Postgres "
          f"{cpu['postgres']:.0f}, moto {cpu['moto']:.0f} (on {os.cpu_count()} cores)")
    print(f"  Postgres: {delta.written} rows written ({delta.written / shots:.1f} per shot, {delta.written / wall:.0f} "
          f"per second), {delta.commits} commits ({delta.commits / shots:.1f} per shot, {delta.commits / wall:.0f} per "
          f"second), the database grew {delta.bytes / 1e6:.1f} MB ({delta.bytes / shots / 1e3:.1f} kB per shot)")
    for table, written in sorted(delta.rows.items(), key=lambda item: -item[1]):
        if written:
            print(f"    {table:<28}{written:>7} rows written, {written / shots:>6.2f} per shot")
    transactions: Counter[str] = Counter()
    for result in results.values():
        transactions.update(result["transactions"])
    print("  state transactions the hosts made: " + ", ".join(
        f"{kind} {number} ({number / shots:.1f} per shot, {number / wall:.0f}/s)" for kind, number in
        sorted(transactions.items())))
    print("  the ledger's calls per shot by stage: " + ", ".join(
        f"{stage} {number / shots:.2f}" for stage, number in calls_by_stage(url)))
    objects, stored = s3_objects(endpoint)
    print(f"  S3: {objects} objects, {stored / 1e6:.1f} MB ({objects / shots:.1f} objects, {stored / shots / 1e3:.0f} kB "
          f"per shot at frame scale {SMALL['REELFLOW_FRAME_SCALE']})")
    twice = paid_twice(url)
    print(f"  content made twice: {twice}")
    if twice or any(e["failed"] for r in results.values() for e in r["episodes"]):
        sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("lock", "render"), help="one part only")
    parser.add_argument("--writers", type=int, default=4, help="write lock: processes")
    parser.add_argument("--threads", type=int, default=4, help="write lock: threads per process")
    parser.add_argument("--lock-s", type=float, default=5.0, help="write lock: seconds per row")
    parser.add_argument("--waiters", type=int, default=24, help="write lock: calls polling a full account (three more "
                        "hosts' gates of 8 at fal's limit)")
    parser.add_argument("--ledger-rows", type=int, default=10800, help="write lock: a season's ledger "
                        "(1800 shots x 6 calls: EP1 makes 127 calls for 21 shots)")
    parser.add_argument("--shots", type=int, default=200)
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=10, help="the local provider's calls at once, per host")
    parser.add_argument("--seconds-per-shot", type=float, default=0.6, help="each episode's bound per shot")
    parser.add_argument("--host", type=Path, help=argparse.SUPPRESS)  # a child process: one host
    parser.add_argument("--episodes-here", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.host:
        host_render(args.host, [int(episode) for episode in args.episodes_here.split(",")])
        return
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; {time.strftime('%Y-%m-%d %H:%M %Z')}",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="reelflow-bench-hosts-") as scratch, postgres() as cluster:
        if args.only != "render":
            write_lock(new_database(cluster.url), args)
        if args.only != "lock":
            with moto(BUCKET) as (endpoint, moto_pid):
                two_hosts(cluster, endpoint, moto_pid, Path(scratch), args)


if __name__ == "__main__":
    main()
