"""The ledger: a submitted request stays pending until it ends, across processes; costs add up."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from reelflow.state.ledger import Ledger


def _submit_from_another_process(path: str) -> None:
    Ledger(Path(path)).ticket("k1", "fal").submitted("fal-ai/flux-2/lora", "req-9")


def test_pending_until_completed(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ticket = ledger.ticket("k1", "fal")
    assert ticket.resume("fal-ai/flux-2/lora") is None
    ticket.submitted("fal-ai/flux-2/lora", "req-1")
    assert Ledger(tmp_path / "ledger.jsonl").ticket("k1", "fal").resume("fal-ai/flux-2/lora") == "req-1"
    assert ticket.resume("fal-ai/other") is None
    ticket.completed("fal-ai/flux-2/lora", "req-1", 0.02)
    assert ticket.resume("fal-ai/flux-2/lora") is None
    assert ledger.total_cost() == 0.02


def test_cancelled_and_failed_requests_are_not_pending(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ticket = ledger.ticket("k2", "fal")
    ticket.submitted("e", "a")
    ticket.cancelled("e", "a", "deadline passed")
    ticket.submitted("e", "b")
    ticket.failed("e", "b", "content_policy_violation", cost_usd=0.01)
    assert ledger.pending("k2") is None
    assert ledger.total_cost() == 0.01
    assert [line.event for line in ledger.lines()] == ["submitted", "cancelled", "submitted", "failed"]


def test_a_request_submitted_by_a_killed_process_is_resumed(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    process = multiprocessing.get_context("spawn").Process(target=_submit_from_another_process, args=(str(path),))
    process.start()
    process.join()
    assert Ledger(path).ticket("k1", "fal").resume("fal-ai/flux-2/lora") == "req-9"
