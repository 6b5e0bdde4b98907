"""Benchmark: injected provider faults never make reelflow pay twice and never change what it renders.

Every scenario renders the same episode on the local provider, each on a fresh copy of the project, all against
one Prefect server started once for the whole run (in a temporary REELFLOW_HOME, stopped at the end):

- clean: no faults. The reference: the sha256 of every file of the episode's assets folder (the manifest and
  dailies aside) and the paid submits.
- rate_limit, server_error, timeout at 10, 30 and 50 % of calls (`REELFLOW_LOCAL_FAULTS`), retried by Prefect
  (`REELFLOW_RETRIES`, `REELFLOW_RETRY_DELAY_S`): every shot must end rendered, byte-identical to clean.
- sigkill: a render slowed by `REELFLOW_LOCAL_LATENCY` whose process group is SIGKILLed once the ledger holds
  requests, one of them pending, then rendered again to completion: byte-identical to clean.
- sigkill_settled: the same, killed the moment the ledger settles a request as completed (paid) while the cache
  index does not hold its output yet (the provider has returned; reelflow is probing and storing the files).
- reject: the last shot's prompt holds a word moderation rejects (`REELFLOW_LOCAL_BANNED_WORDS`). Offline the
  only provider is local, so the fallback is the stage's own provider, which reelflow does not call again
  (tasks/calls.py): that shot fails, the other shots must match clean, and a second render must not submit
  the rejected request again. A real fallback needs a second provider (tests/flows/test_cloud_render.py
  routes fal rejections to local through a loopback fal).

The local provider's failures cost nothing by design, so it cannot catch a render that pays for an answer it never
got. The billing scenarios render against the loopback fakes of fal and Gemini (tests/fakes), which keep their own
bill by each service's rule, and compare it with the ledger, to the cent:

- fal_dropped: fal runs and bills two submits whose answers are lost (the socket closes).
- gemini_stalled: Gemini generates and bills two upscales, then answers past the client's timeout.
- fal_forgotten: a render SIGKILLed with fal requests in flight, resumed after fal finished and forgot them.

Each must end with the ledger equal to the fake's bill and no request body submitted past 1 + billed_retries.

A paid submit is a ledger row a provider bills or may still bill: completed, billed (cost > 0), still pending, or
unknown (no answer came; a shadow row of the local provider aside: it runs nothing when cut off).
An unbilled failure (429, 5xx, timeout, rejection: failed at no cost) is a retry, not a payment. A cache key
with more than one paid row is a duplicate paid submit; every fault scenario must have none (exit code 1 if
one does). `unbilled` counts the unbilled failures: the faults the render went through.

    python bench/faults.py --quick      # 30 % of each fault, the kills, reject, on two shots, all at once (~90 s)
    python bench/faults.py              # 10/30/50 % of each fault on every shot of episode 2: several minutes
    python bench/faults.py --jobs 1     # one scenario at a time: wall_s without the others' contention

Scenarios run side by side (`--jobs`, 3 by default, every one with --quick), each on its own copy: their wall_s
include the contention.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import reelflow
from reelflow.cli.server import prefect_env, start_server, stop_server
from reelflow.schemas.errors import ReelflowError
from reelflow.state.ledger import Ledger, LedgerRow

REELFLOW = Path(sys.executable).with_name("reelflow")
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "leviathan"
RESULTS = Path(__file__).resolve().parent / "results" / "faults.json"
FAULT_KINDS = ("rate_limit", "server_error", "timeout")
RATES = (0.1, 0.3, 0.5)
QUICK_RATES = (0.3,)
QUICK_SHOTS = "2,4"  # a first-last-frame shot and a held frame: 10 provider calls
RENDER_TIMEOUT_S = 900.0
KILL_AFTER_ROWS = 3
JOBS = 3


@dataclass
class Render:
    """One `reelflow render --json` process: how long it took, its exit code and report."""

    seconds: float
    code: int
    report: dict[str, Any]
    stderr: str


@dataclass
class Result:
    """One scenario's row."""

    scenario: str
    wall_s: float
    paid_submits: int
    duplicates: int
    identical: bool = False
    clean_paid_submits: int = 0
    unbilled: int = 0
    rendered: int = 0
    failed: int = 0
    env: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    duplicate_keys: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict, repr=False)  # sha256 by asset name, compared to clean's
    rejected_shot: int | None = None

    def compare(self, clean: Result, episode: int) -> None:
        """Set `identical` and `clean_paid_submits` from the clean render's."""
        self.identical = self.files == clean.files
        self.clean_paid_submits = clean.paid_submits
        if self.rejected_shot is not None:
            same = others_match(self.files, clean.files, episode, self.rejected_shot)
            self.notes.append(f"the other shots' files identical to clean: {'yes' if same else 'NO'}")

    def row(self) -> dict[str, Any]:
        return {name: value for name, value in asdict(self).items() if name != "files"}


@dataclass
class Bench:
    """What every scenario shares: the source project, the episode, the shots, the scratch folder, the base env."""

    source: Path
    episode: int
    shots: str | None
    scratch: Path
    env: dict[str, str]

    def command(self, project: Path) -> list[str]:
        command = [str(REELFLOW), "render", str(project), "--episode", str(self.episode), "--json"]
        return command + (["--shots", self.shots] if self.shots else [])

    def copy(self, name: str, providers: dict[str, Any] | None = None) -> Path:
        """A fresh copy of the project (no assets, state or dailies) with every stage on the local provider."""
        project = self.scratch / name / self.source.name
        shutil.copytree(self.source, project, ignore=shutil.ignore_patterns("assets", ".reelflow", "dailies_ep_*"))
        settings = json.loads((project / "project.json").read_text())
        settings["providers"] = providers or {"default": "local"}
        (project / "project.json").write_text(json.dumps(settings, indent=2))
        return project

    def render(self, project: Path, env: dict[str, str]) -> Render:
        started = time.perf_counter()
        done = subprocess.run(self.command(project), capture_output=True, text=True, env=os.environ | self.env | env,
                              timeout=RENDER_TIMEOUT_S)
        try:
            report = json.loads(done.stdout)
        except ValueError:
            report = {}
        return Render(time.perf_counter() - started, done.returncode, report, done.stderr)


def assets(project: Path, episode: int) -> dict[str, str]:
    """sha256 of every file in the episode's assets folder, by name, the manifest and dailies aside."""
    folder = project / "storyboards" / "assets" / f"ep_{episode:03d}"
    if not folder.is_dir():
        return {}
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != "manifest.json" and "dailies" not in path.name
    }


def ledger(project: Path) -> Ledger:
    return Ledger.at(project / ".reelflow")


def is_paid(row: LedgerRow) -> bool:
    """A request the provider billed or may still bill; an unbilled failure (429, 5xx, timeout) is not one."""
    return row.status in ("completed", "pending") or row.cost_usd > 0 or (row.status == "unknown" and not row.shadow)


def paid_by_key(rows: list[LedgerRow]) -> Counter[str]:
    return Counter(row.cache_key for row in rows if is_paid(row))


def duplicate_keys(rows: list[LedgerRow]) -> list[dict[str, Any]]:
    """Every cache key paid more than once, with its paid rows as evidence."""
    counts = paid_by_key(rows)
    return [
        {"cache_key": key, "paid_rows": [
            {"stage": row.stage, "shot": row.shot, "status": row.status, "cost_usd": row.cost_usd,
             "request_id": row.request_id, "run": row.run}
            for row in rows if row.cache_key == key and is_paid(row)
        ]}
        for key, count in counts.items() if count > 1
    ]


def unbilled(rows: list[LedgerRow]) -> int:
    return sum(1 for row in rows if not is_paid(row))


def measured(name: str, project: Path, episode: int, wall: float, render: Render, env: dict[str, str]) -> Result:
    """The row of a finished scenario: what the ledger says was paid, how the render ended, what it made."""
    rows = ledger(project).rows()
    doubles = duplicate_keys(rows)
    shots = render.report.get("shots", {})
    return Result(
        scenario=name, wall_s=round(wall, 2), paid_submits=sum(paid_by_key(rows).values()),
        duplicates=sum(len(entry["paid_rows"]) - 1 for entry in doubles), unbilled=unbilled(rows),
        rendered=int(shots.get("rendered", 0)), failed=int(shots.get("failed", 0)), env=env, duplicate_keys=doubles,
        files=assets(project, episode),
    )


def failures(render: Render) -> list[str]:
    """What went wrong in a render, in one line each."""
    notes = [f"shot {item.get('shot')} {item.get('stage')}: {item.get('reason')}" for item in render.report.get("failures", [])]
    if render.code != 0 and not render.report:
        notes.append(f"render exited {render.code}: {render.stderr.strip()[-300:]}")
    return notes


def clean_scenario(bench: Bench) -> Result:
    """The reference: no faults."""
    project = bench.copy("clean")
    render = bench.render(project, {})
    if render.code != 0:
        sys.exit(f"the clean render failed ({render.code}): {'; '.join(failures(render)) or render.stderr[-500:]}")
    result = measured("clean", project, bench.episode, render.seconds, render, {})
    keys = len(paid_by_key(ledger(project).rows()))
    if keys != result.paid_submits:
        result.notes.append(f"{keys} cache keys for {result.paid_submits} paid rows")
    return result


def transient_scenario(bench: Bench, kind: str, rate: float, retries: int) -> Result:
    """A render where `rate` of calls fail with `kind` (unbilled), retried until every shot is made."""
    name = f"{kind}_{round(rate * 100)}"
    env = {"REELFLOW_LOCAL_FAULTS": f"{kind}={rate}", "REELFLOW_RETRIES": str(retries)}
    project = bench.copy(name)
    render = bench.render(project, env)
    result = measured(name, project, bench.episode, render.seconds, render, env)
    result.notes += failures(render)
    return result


def state_rows(project: Path, where: str = "") -> list[LedgerRow]:
    """The ledger's rows once the render has created its database (none before, or while it is being set up)."""
    if not (project / ".reelflow" / "state.db").exists():
        return []
    try:
        return ledger(project).rows(where)
    except (sqlite3.Error, ReelflowError):
        return []


def paying(project: Path) -> list[LedgerRow]:
    """Requests in flight, once the ledger holds a few: the moment of the plain kill."""
    rows = state_rows(project)
    return [row for row in rows if row.status == "pending"] if len(rows) >= KILL_AFTER_ROWS else []


def settled_uncached(project: Path) -> list[LedgerRow]:
    """Requests the ledger already settles as completed (paid) whose output the cache index does not hold yet."""
    return state_rows(project, "status = 'completed' AND cache_key NOT IN (SELECT cache_key FROM cache)")


def kill_when(bench: Bench, project: Path, env: dict[str, str], ready: Callable[[Path], list[LedgerRow]],
              poll_s: float) -> tuple[float, list[LedgerRow], list[LedgerRow]]:
    """Start a render in its own session and SIGKILL its process group as soon as `ready` finds ledger rows.

    Returns the seconds it ran, the rows `ready` found (none: it ended before), and the ledger's rows after the kill.
    """
    started = time.perf_counter()
    process = subprocess.Popen(bench.command(project), env=os.environ | bench.env | env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + RENDER_TIMEOUT_S
    found: list[LedgerRow] = []
    while process.poll() is None and time.monotonic() < deadline and not found:
        found = ready(project)
        if not found:
            time.sleep(poll_s)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    else:
        found = []
    process.wait()
    return time.perf_counter() - started, found, state_rows(project)


def sigkill_scenario(bench: Bench, latency: float) -> Result:
    """SIGKILL a slow render while requests are in flight, then render again (no latency) to completion."""
    env = {"REELFLOW_LOCAL_LATENCY": str(latency)}
    project = bench.copy("sigkill")
    first, found, at_kill = kill_when(bench, project, env, paying, 0.05)
    render = bench.render(project, {})
    result = measured("sigkill", project, bench.episode, first + render.seconds, render, env)
    if found:
        result.notes.append(f"killed after {first:.1f} s with {len(at_kill)} ledger rows, {len(found)} pending; "
                            f"resumed in {render.seconds:.1f} s")
    else:
        result.notes.append(f"the render ended before the kill ({len(at_kill)} rows): raise --kill-latency")
    result.notes += failures(render)
    return result


def sigkill_settled_scenario(bench: Bench) -> Result:
    """SIGKILL a render the moment a request is settled as completed, before its output is in the cache; resume."""
    project = bench.copy("sigkill_settled")
    first, found, _ = kill_when(bench, project, {}, settled_uncached, 0.002)
    render = bench.render(project, {})
    result = measured("sigkill_settled", project, bench.episode, first + render.seconds, render, {})
    if found:
        row = found[0]
        result.notes.append(f"killed after {first:.1f} s: {row.stage} of shot {row.shot} ({row.cache_key[:12]}) "
                            f"settled completed at ${row.cost_usd}, its output not cached yet; resumed in {render.seconds:.1f} s")
    else:
        result.notes.append("the kill never landed between a request's settling and its caching: nothing shown")
    result.notes += failures(render)
    return result


def words(text: str) -> set[str]:
    """The words of `text` as the local provider's moderation splits them."""
    return set(text.lower().replace(",", " ").replace(".", " ").split())


def strings(value: Any) -> list[str]:
    """Every string inside a JSON value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in strings(item)]
    return []


def prompts(value: Any) -> list[str]:
    """The strings under every key that names a prompt, at any depth."""
    if isinstance(value, dict):
        return [text for key, item in value.items()
                for text in (strings(item) if "prompt" in key else prompts(item))]
    if isinstance(value, list):
        return [text for item in value for text in prompts(item)]
    return []


def template_words() -> set[str]:
    """Every word in the code that writes requests (stage tasks, providers): their prompt templates among them."""
    root = Path(reelflow.__file__).parent
    sources = [path for package in ("tasks", "providers") for path in (root / package).rglob("*.py")]
    return {word for path in sources for word in re.findall(r"[a-z]+", path.read_text().lower())}


def banned_word(project: Path, episode: int, shot: int) -> str | None:
    """The longest word of `shot`'s prompts found nowhere else: not in the storyboard's other shots, the breakdown,
    the project or reelflow's own prompt templates."""
    board = json.loads((project / "storyboards" / f"storyboard_ep_{episode:03d}.json").read_text())
    target = next(item for item in board["shots"] if item["shot"] == shot)
    elsewhere = {"shots": [item for item in board["shots"] if item["shot"] != shot]} | {
        key: value for key, value in board.items() if key != "shots"}
    others = [*strings(elsewhere), *strings(json.loads((project / "breakdown.json").read_text())),
              *strings(json.loads((project / "project.json").read_text()))]
    common = template_words().union(*(re.findall(r"[a-z]+", text.lower()) for text in others))
    unique = sorted(word for text in prompts(target) for word in words(text) if word.isalpha() and word not in common)
    return max(unique, key=len) if unique else None


def shot_numbers(bench: Bench) -> list[int]:
    if bench.shots:
        return [int(item) for item in bench.shots.split(",") if item.strip()]
    board = json.loads((bench.source / "storyboards" / f"storyboard_ep_{bench.episode:03d}.json").read_text())
    return [item["shot"] for item in board["shots"]]


def others_match(found: dict[str, str], reference: dict[str, str], episode: int, shot: int) -> bool:
    """Whether every file of the other shots is byte-identical to clean (the cut, holding every shot, aside)."""
    tag, cut = f"_S{shot:02d}_", f"ep_{episode:03d}.mp4"
    return all(found.get(name) == sha for name, sha in reference.items() if tag not in name and name != cut)


def rejected_submits(project: Path) -> dict[str, int]:
    """How many ledger rows each rejected cache key has."""
    db = ledger(project).db
    keys = [row["cache_key"] for row in db.rows("SELECT cache_key FROM rejections")]
    return {key: len(ledger(project).rows("cache_key = ?", (key,))) for key in keys}


def reject_scenario(bench: Bench) -> Result:
    """Moderation rejects the last shot's content; the fallback is the same provider; then render again."""
    shot = shot_numbers(bench)[-1]
    providers = {"default": {"use": "local", "fallback": "local"}}
    project = bench.copy("reject", providers)
    word = banned_word(project, bench.episode, shot)
    env = {"REELFLOW_LOCAL_BANNED_WORDS": word or ""}
    first = bench.render(project, env)
    again = bench.render(project, env)
    result = measured("reject", project, bench.episode, first.seconds + again.seconds, again, env)
    result.rejected_shot = shot
    submits = rejected_submits(project)
    resubmitted = {key: count for key, count in submits.items() if count > 1}
    result.notes += [
        "fallback: local, the stage's own provider (the only one offline): reelflow does not call it again, "
        "so the rejected shot fails",
        f"banned word {word!r} from shot {shot}: {len(submits)} request(s) rejected, "
        f"{'none' if not resubmitted else len(resubmitted)} submitted again by the second render",
        *failures(first),
    ]
    if word is None:
        result.notes.append(f"no word of shot {shot}'s prompts is unique to it: nothing was rejected")
    if resubmitted:
        result.duplicates += sum(count - 1 for count in resubmitted.values())
        result.duplicate_keys += [{"cache_key": key, "rejected_rows": count} for key, count in resubmitted.items()]
    return result


def row_line(result: Result) -> str:
    return (f"{result.scenario:<16}{result.wall_s:>8.2f}  {'yes' if result.identical else 'no':<10}"
            f"{result.paid_submits:>13}{result.clean_paid_submits:>20}{result.duplicates:>12}{result.unbilled:>10}")


def print_table(results: list[Result]) -> None:
    print(f"{'scenario':<16}{'wall_s':>8}  {'identical':<10}{'paid_submits':>13}{'clean_paid_submits':>20}"
          f"{'duplicates':>12}{'unbilled':>10}")
    for result in results:
        print(row_line(result))
        for note in result.notes:
            print(f"    {note}")


def described(entry: dict[str, Any]) -> str:
    """One duplicate in a line: which request, how many times paid and for how much."""
    if "rejected_rows" in entry:
        return f"rejected request {entry['cache_key'][:12]} submitted {entry['rejected_rows']} times"
    rows = entry["paid_rows"]
    return (f"{rows[0]['stage']} of shot {rows[0]['shot']} ({entry['cache_key'][:12]}) paid {len(rows)} times, "
            f"${sum(row['cost_usd'] for row in rows):.4f} in all, by runs {', '.join(str(row['run'])[:8] for row in rows)}")


def violations(results: list[Result]) -> tuple[list[str], list[str]]:
    """Duplicate paid submits in any fault scenario; results that differ from clean where they must not."""
    doubles = [f"{result.scenario}: {result.duplicates} duplicate paid submit(s): "
               + "; ".join(described(entry) for entry in result.duplicate_keys)
               for result in results[1:] if result.duplicates]
    changed = [f"{result.scenario}: identical={result.identical}, paid {result.paid_submits} vs clean "
               f"{result.clean_paid_submits}, {result.failed} shot(s) failed"
               for result in results[1:] if result.scenario != "reject"
               and (not result.identical or result.paid_submits != result.clean_paid_submits or result.failed)]
    return doubles, changed


def scenarios(bench: Bench, rates: tuple[float, ...], retries: int, latency: float, jobs: int) -> list[Result]:
    """Every scenario, `jobs` at a time (0: all), each on its own copy so they share no state; compared to clean."""
    plans: list[Callable[[], Result]] = [partial(clean_scenario, bench)]
    plans += [partial(transient_scenario, bench, kind, rate, retries) for kind in FAULT_KINDS for rate in rates]
    plans += [partial(sigkill_scenario, bench, latency), partial(sigkill_settled_scenario, bench),
              partial(reject_scenario, bench)]
    with ThreadPoolExecutor(max_workers=jobs if jobs > 0 else len(plans)) as pool:
        results = list(pool.map(lambda plan: plan(), plans))
    for result in results[1:]:
        result.compare(results[0], bench.episode)
    results[0].compare(results[0], bench.episode)
    return results


@dataclass
class Billing:
    """One billing scenario: what the fake billed, what the ledger counts, the most submits of one body."""

    scenario: str
    wall_s: float
    billed_usd: float
    ledger_usd: float
    max_submits_per_body: int
    code: int
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return round(self.billed_usd, 2) == round(self.ledger_usd, 2) and self.max_submits_per_body <= 2 and self.code == 0


def _fakes() -> Any:
    """The loopback fakes of tests/ (bench only: they are not part of the installed package)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import fakes.fal
    import fakes.gemini

    return fakes


def fal_dropped_scenario(bench: Bench) -> Billing:
    """fal runs and bills two submits whose answers never arrive."""
    fakes = _fakes()
    with fakes.fal.FakeFal() as fal:
        project = bench.copy("fal_dropped", {"default": "local", "keyframes": "fal", "video": "fal"})
        fal.drop_submits = 2
        render = bench.render(project, fal.env())
        return Billing("fal_dropped", round(render.seconds, 2), fal.billed_usd, ledger(project).spent(shadow=False),
                       max(fal.submits_by_body.values(), default=0), render.code, failures(render))


def gemini_stalled_scenario(bench: Bench) -> Billing:
    """Gemini generates and bills two upscales, then answers after the client gave up."""
    fakes = _fakes()
    with fakes.gemini.FakeGemini() as gemini:
        project = bench.copy("gemini_stalled", {"default": "local", "upscale": "gemini"})
        gemini.stall_s = 4.0
        gemini.stall_next(2)
        render = bench.render(project, gemini.env() | {"REELFLOW_GEMINI_TIMEOUT_S": "2"})
        return Billing("gemini_stalled", round(render.seconds, 2), gemini.billed_usd, ledger(project).spent(shadow=False),
                       max(gemini.billed_by_body.values(), default=0), render.code, failures(render))


def fal_forgotten_scenario(bench: Bench) -> Billing:
    """A render killed with fal requests in flight, resumed after fal finished, billed and forgot them."""
    fakes = _fakes()
    with fakes.fal.FakeFal(slow_s=3.0) as fal:
        project = bench.copy("fal_forgotten", {"default": "local", "keyframes": "fal", "video": "fal"})

        def in_flight(folder: Path) -> list[LedgerRow]:
            rows = state_rows(folder, "status = 'pending'")
            return rows if len(rows) >= 2 and len(rows) == fal.total_submits() else []

        first, found, _ = kill_when(bench, project, fal.env(), in_flight, 0.05)
        fal.slow_s = 0.0
        fal.forget_results()
        render = bench.render(project, fal.env())
        notes = [f"killed with {len(found)} requests in flight" if found else "the render ended before the kill"]
        return Billing("fal_forgotten", round(first + render.seconds, 2), fal.billed_usd,
                       ledger(project).spent(shadow=False), max(fal.submits_by_body.values(), default=0), render.code,
                       notes + failures(render))


def print_billing(results: list[Billing]) -> None:
    print(f"{'billing':<16}{'wall_s':>8}{'fake_billed':>13}{'ledger':>10}{'max_submits':>13}  ok")
    for result in results:
        print(f"{result.scenario:<16}{result.wall_s:>8.2f}{result.billed_usd:>13.4f}{result.ledger_usd:>10.4f}"
              f"{result.max_submits_per_body:>13}  {'yes' if result.ok else 'NO'}")
        for note in result.notes:
            print(f"    {note}")


def server_env(home: Path) -> dict[str, str]:
    """Start the bench's own Prefect server on any free port; the environment its renders need to use it."""
    port = os.environ.get("REELFLOW_SERVER_PORT")
    os.environ["REELFLOW_SERVER_PORT"] = "0"
    try:
        info = start_server(home)
    finally:
        if port is None:
            os.environ.pop("REELFLOW_SERVER_PORT")
        else:
            os.environ["REELFLOW_SERVER_PORT"] = port
    return prefect_env(home) | {"REELFLOW_HOME": str(home), "PREFECT_API_URL": info.api_url}


def base_env(seed: int) -> dict[str, str]:
    """No fault, latency or banned word unless a scenario sets it; fast retries; the suite's fast x264 preset."""
    return {
        "REELFLOW_LOCAL_FAULTS": "", "REELFLOW_LOCAL_LATENCY": "", "REELFLOW_LOCAL_BANNED_WORDS": "",
        "REELFLOW_LOCAL_FAULT_SEED": str(seed), "REELFLOW_RETRY_DELAY_S": "0.01",
        "REELFLOW_X264_PRESET": os.environ.get("REELFLOW_X264_PRESET", "ultrafast"),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=EXAMPLE)
    parser.add_argument("--episode", type=int, default=2)
    parser.add_argument("--shots", help=f"only these shots, e.g. 3,7 (default: every shot; with --quick {QUICK_SHOTS})")
    parser.add_argument("--quick", action="store_true", help="30 %% of each fault only, on a few shots")
    parser.add_argument("--retries", type=int, default=12, help="REELFLOW_RETRIES of the fault scenarios")
    parser.add_argument("--kill-latency", type=float, default=0.3, help="REELFLOW_LOCAL_LATENCY of the killed render")
    parser.add_argument("--seed", type=int, default=0, help="REELFLOW_LOCAL_FAULT_SEED")
    parser.add_argument("--jobs", type=int, help=f"scenarios rendered side by side, 0: all (default {JOBS}; "
                        "with --quick all); their wall_s include the contention (1 for timings)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    shots = args.shots or (QUICK_SHOTS if args.quick else None)
    if args.jobs is None:
        args.jobs = 0 if args.quick else JOBS
    with tempfile.TemporaryDirectory(prefix="reelflow-faults-") as scratch:
        home = Path(scratch) / "home"
        try:
            env = base_env(args.seed) | server_env(home)
            bench = Bench(args.project.resolve(), args.episode, shots, Path(scratch), env)
            results = scenarios(bench, QUICK_RATES if args.quick else RATES, args.retries, args.kill_latency, args.jobs)
            billing = [plan(bench) for plan in (fal_dropped_scenario, gemini_stalled_scenario, fal_forgotten_scenario)]
        finally:
            stop_server(home)
    print(f"episode {args.episode}, shots {shots or 'all'}, local provider, seed {args.seed}, "
          f"{args.jobs or 'all'} scenario(s) at a time")
    print_table(results)
    doubles, changed = violations(results)
    print("duplicate paid submits in every fault scenario: 0" if not doubles else
          "duplicate paid submits:\n  " + "\n  ".join(doubles))
    print("assets identical to clean after every transient fault and the kill: yes" if not changed else
          "results changed:\n  " + "\n  ".join(changed))
    print_billing(billing)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"scenarios": [result.row() for result in results],
                                    "billing": [asdict(result) | {"ok": result.ok} for result in billing],
                                    "episode": args.episode,
                                    "shots": shots, "quick": args.quick, "seed": args.seed, "jobs": args.jobs}, indent=2) + "\n")
    print(f"wrote {args.out} in {time.perf_counter() - started:.1f} s")
    if doubles or not all(result.ok for result in billing):
        sys.exit(1)


if __name__ == "__main__":
    main()
