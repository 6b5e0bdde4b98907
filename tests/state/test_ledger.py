"""The ledger in the state database: a row per request, pending until the provider settles it, across processes."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reelflow.state.db import FILE_NAME, Database
from reelflow.state.ledger import Charge, Ledger, LedgerTicket

FLUX = "fal-ai/flux-2/lora"


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / ".reelflow"


def fresh(state_dir: Path) -> Ledger:
    """The same database through a connection of its own, as another process opens it."""
    return Ledger(Database(state_dir / FILE_NAME))


SUBMITTER = """
import sys
from pathlib import Path
from reelflow.state.ledger import Charge, Ledger
Ledger.at(Path(sys.argv[1])).ticket("k1", "fal", Charge(run="spawned", price_usd=0.02)).submitted(sys.argv[2], "req-9")
"""


def test_pending_until_completed(state_dir: Path) -> None:
    ledger = Ledger.at(state_dir)
    ticket = ledger.ticket("k1", "fal", Charge(run="r1", price_usd=0.02))
    assert ticket.resume(FLUX) is None and ledger.rows() == []
    ticket.submitted(FLUX, "req-1")
    assert (state_dir / FILE_NAME).is_file()
    assert fresh(state_dir).ticket("k1", "fal", Charge(run="r1", price_usd=0.02)).resume(FLUX) == "req-1"
    assert ticket.resume("fal-ai/other") is None
    ticket.completed(FLUX, "req-1", 0.02)
    assert ticket.resume(FLUX) is None
    [row] = ledger.rows()
    assert (row.cache_key, row.provider, row.endpoint, row.request_id, row.status) == ("k1", "fal", FLUX, "req-1", "completed")
    assert (row.price_usd, row.cost_usd, row.run, row.shadow) == (0.02, 0.02, "r1", False)
    assert row.settled_at is not None and row.settled_at >= row.submitted_at
    assert ledger.spent() == 0.02


def test_pending_is_looked_up_by_key_and_endpoint(state_dir: Path) -> None:
    ledger = Ledger.at(state_dir)
    ledger.ticket("k1", "fal").submitted(FLUX, "flux-1")
    ledger.ticket("k1", "fal").submitted("fal-ai/seedvr/upscale/image", "upscale-1")
    ledger.ticket("k2", "fal").submitted(FLUX, "other-key")
    assert ledger.pending("k1", FLUX) == "flux-1"
    assert ledger.pending("k1", "fal-ai/seedvr/upscale/image") == "upscale-1"
    assert ledger.pending("k1") == "upscale-1"  # without an endpoint: the newest of the key's pending requests
    assert ledger.pending("k2") == "other-key" and ledger.pending("k2", "fal-ai/seedvr/upscale/image") is None
    assert ledger.pending("k3") is None and ledger.pending("k3", FLUX) is None
    ledger.ticket("k1", "fal").completed(FLUX, "flux-1", 0.02)
    assert ledger.pending("k1", FLUX) is None and ledger.pending("k1") == "upscale-1"
    assert ledger.pending("k2") == "other-key"  # settling one key's request leaves the others alone


def test_cancelled_and_failed_requests_are_not_pending_and_each_request_is_one_row(state_dir: Path) -> None:
    ledger = Ledger.at(state_dir)
    ticket = ledger.ticket("k2", "fal", Charge(price_usd=0.01))
    ticket.submitted("e", "a")
    ticket.cancelled("e", "a", "deadline passed")
    ticket.submitted("e", "b")
    ticket.failed("e", "b", "content_policy_violation", cost_usd=0.01)
    assert ledger.pending("k2") is None
    assert ledger.spent() == 0.01
    assert [(row.request_id, row.status, row.cost_usd, row.detail) for row in ledger.rows()] == [
        ("a", "cancelled", 0.0, "deadline passed"), ("b", "failed", 0.01, "content_policy_violation"),
    ]
    assert ledger.billed_failures("k2") == 1  # counted per cache key, whichever run paid
    assert ledger.forget_billed_failures() == 1 and ledger.billed_failures("k2") == 0
    assert ledger.spent() == 0.01  # forgiven, still money spent


def test_a_settled_request_is_never_settled_again(state_dir: Path) -> None:
    ledger = Ledger.at(state_dir)
    ticket = ledger.ticket("k1", "fal", Charge(price_usd=0.02))
    ticket.submitted(FLUX, "req-1")
    ticket.completed(FLUX, "req-1", 0.02)
    ticket.cancel_requested(FLUX, "req-1", "too late")
    assert [(row.status, row.detail) for row in ledger.rows()] == [("completed", "")]


def test_a_cancel_requested_stays_pending_until_settled(state_dir: Path) -> None:
    ledger = Ledger.at(state_dir)
    ticket = ledger.ticket("k1", "fal", Charge(price_usd=0.02))
    ticket.submitted(FLUX, "req-1")
    ticket.cancel_requested(FLUX, "req-1", "no result after 900 s; cancel requested")
    [row] = ledger.rows()
    assert (row.status, row.detail) == ("pending", "no result after 900 s; cancel requested")
    assert ledger.pending("k1", FLUX) == "req-1" and ledger.spent() == 0.02
    ticket.completed(FLUX, "req-1", 0.02)
    assert [(row.status, row.cost_usd) for row in ledger.rows()] == [("completed", 0.02)]


def test_a_request_settled_at_once_is_recorded_whole(state_dir: Path) -> None:
    ledger = Ledger.at(state_dir)
    charge = Charge(run="r1", stage="qc", episode=1, shot=4, price_usd=0.001, shadow=True)
    ledger.ticket("k1", "local", charge).completed("gemini-2.5-flash", "local-1", 0.001)
    [row] = ledger.rows()
    assert (row.status, row.cost_usd, row.price_usd, row.shadow, row.stage, row.episode, row.shot) == (
        "completed", 0.001, 0.001, True, "qc", 1, 4)


def test_resume_charges_a_pending_request_to_the_run_that_resumes_it(state_dir: Path) -> None:
    ledger = Ledger.at(state_dir)
    ledger.ticket("k1", "fal", Charge(run="crashed", stage="keyframes", episode=1, shot=2, price_usd=0.02)).submitted(
        FLUX, "req-1")
    ledger.ticket("k1", "fal", Charge(run="crashed", price_usd=0.04)).submitted("fal-ai/other", "req-2")
    assert ledger.spent("crashed") == 0.06
    resumer = fresh(state_dir).ticket("k1", "fal", Charge(run="resumed", stage="keyframes", episode=1, shot=3, price_usd=0.02))
    assert resumer.resume(FLUX) == "req-1"
    first, second = ledger.rows()
    assert (first.run, first.shot, first.status) == ("resumed", 3, "pending")
    assert (second.run, second.status) == ("crashed", "pending")  # another endpoint's request is not touched
    assert ledger.spent("crashed") == 0.04 and ledger.spent("resumed") == 0.02
    resumer.completed(FLUX, "req-1", 0.02)
    assert ledger.run_spend("resumed") == {3: (1, 0.02)}


def test_spent_counts_pending_at_price_and_settled_at_cost(state_dir: Path) -> None:
    ledger = Ledger.at(state_dir)

    def ticket(key: str, run: str, price: float) -> LedgerTicket:
        return ledger.ticket(key, "fal", Charge(run=run, shot=1, price_usd=price))

    ticket("pending", "r1", 0.5).submitted("e", "p")
    ticket("completed", "r1", 0.5).submitted("e", "c")
    ticket("completed", "r1", 0.5).completed("e", "c", 0.25)  # fal billed less than the table's price
    ticket("failed", "r1", 0.5).submitted("e", "f")
    ticket("failed", "r1", 0.5).failed("e", "f", "unusable output", cost_usd=0.5)
    ticket("free", "r2", 0.5).submitted("e", "x")
    ticket("free", "r2", 0.5).failed("e", "x", "server error (500)")
    ticket("gone", "r2", 0.5).submitted("e", "g")
    ticket("gone", "r2", 0.5).cancelled("e", "g", "fal no longer knows the request")
    assert ledger.spent("r1") == 0.5 + 0.25 + 0.5
    assert ledger.spent("r2") == 0.0 and ledger.spent("nobody") == 0.0
    assert ledger.spent() == 1.25
    assert ledger.run_spend("r1") == {1: (3, 1.25)} and ledger.billed_failures("failed") == 1
    ticket("pending", "r1", 0.5).completed("e", "p", 0.5)
    assert ledger.spent() == 1.25  # settled at its price: the total does not move


def test_a_request_submitted_by_another_process_is_resumed(state_dir: Path) -> None:
    done = subprocess.run([sys.executable, "-c", SUBMITTER, str(state_dir), FLUX], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert fresh(state_dir).ticket("k1", "fal").resume(FLUX) == "req-9"


WRITER = """
import sys
from pathlib import Path
from reelflow.state.ledger import Charge, Ledger
ledger = Ledger.at(Path(sys.argv[1]))
i = 0
while True:
    ticket = ledger.ticket(f"k{i}", "fal", Charge(run="loop", price_usd=0.01))
    ticket.submitted("e", f"r{i}")
    ticket.completed("e", f"r{i}", 0.01)
    print(i, flush=True)
    i += 1
"""

def test_a_process_killed_while_writing_leaves_every_committed_row_for_the_next(state_dir: Path) -> None:
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(state_dir)], stdout=subprocess.PIPE, text=True)
    last = -1
    try:
        assert writer.stdout is not None
        waited = time.monotonic()
        while last < 60:
            line = writer.stdout.readline()
            assert line, f"the writer stopped (exit {writer.poll()})"
            last = int(line)
            assert time.monotonic() - waited < 30, "the writer is too slow"
    finally:
        writer.send_signal(signal.SIGKILL)  # mid-loop: most likely inside a transaction
        writer.wait()
    assert writer.returncode == -signal.SIGKILL

    # The next process (this one: its first connection to the file) opens it, finds every committed row, writes.
    ledger = fresh(state_dir)
    rows = ledger.rows()
    looped = {row.cache_key: row for row in rows}
    for i in range(last + 1):  # every pair of transactions the writer finished is there, settled
        row = looped[f"k{i}"]
        assert (row.request_id, row.status, row.cost_usd, row.run) == (f"r{i}", "completed", 0.01, "loop")
    assert len(looped) == len(rows) and set(looped) == {f"k{i}" for i in range(len(rows))}  # none lost, none doubled
    assert all(row.status in ("pending", "completed") for row in rows)  # the one it was killed on, if any: pending
    ticket = ledger.ticket("after", "fal", Charge(run="after", price_usd=0.02))
    ticket.submitted("e", "after-1")
    ticket.completed("e", "after-1", 0.02)
    assert [(row.status, row.cost_usd) for row in ledger.rows("run = ?", ("after",))] == [("completed", 0.02)]
    assert len(Ledger.at(state_dir).rows()) == len(rows) + 1
    with sqlite3.connect(state_dir / FILE_NAME) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_only_paid_rows_wait_for_the_disk(state_dir: Path) -> None:
    """A paid request's rows are synced to disk before the call waits; the local provider's shadow rows are not
    (a power cut loses at most work that costs nothing to make again)."""
    ledger = Ledger.at(state_dir)
    levels = []
    for shadow in (True, False):
        ledger.ticket(f"k{shadow}", "fal", Charge(run="r", price_usd=0.1, shadow=shadow)).submitted(FLUX, f"q{shadow}")
        levels.append(ledger.db.row("PRAGMA synchronous")[0])
    assert levels == [1, 2], "NORMAL for the shadow row, FULL for the paid one"
