"""The one-time import of a project's earlier files: ledger.jsonl (torn line included), cache records, rejections."""

from __future__ import annotations

import json
from pathlib import Path

from reelflow.state.db import Database
from reelflow.state.ledger import Ledger
from reelflow.state.legacy import import_legacy
from reelflow.state.store import AssetStore


def _line(event: str, key: str, request_id: str, cost: float = 0.0) -> str:
    return json.dumps({"event": event, "key": key, "provider": "fal", "endpoint": "fal-ai/flux-2/lora",
                       "request_id": request_id, "cost_usd": cost, "detail": "", "at": 1764000000.0})


def _legacy_project(state: Path) -> None:
    state.mkdir(parents=True)
    lines = [
        _line("submitted", "k-done", "r1"), _line("completed", "k-done", "r1", 0.02),
        _line("submitted", "k-open", "r2"),
        _line("submitted", "k-bad", "r3"), _line("failed", "k-bad", "r3", 0.02),
        _line("submitted", "k-gone", "r4"), _line("cancelled", "k-gone", "r4"),
    ]
    (state / "ledger.jsonl").write_text("\n".join(lines) + '\n{"event": "submitted", "key": "k-tor')
    record = {"key": "c" * 64, "outputs": [], "provenance": {"stage": "split", "stage_version": 1, "provider": "media",
                                                             "model": "split-thirds"}}
    (state / "cache" / "cc").mkdir(parents=True)
    (state / "cache" / "cc" / f"{'c' * 64}.json").write_text(json.dumps(record, indent=1))
    (state / "rejections").mkdir()
    (state / "rejections" / f"{'r' * 64}.txt").write_text("fal: content policy: flagged")


def test_the_earlier_files_are_imported_once(tmp_path: Path) -> None:
    state = tmp_path / ".reelflow"
    _legacy_project(state)
    ledger = Ledger.at(state)
    rows = {row.request_id: row for row in ledger.rows()}
    assert {rid: (row.status, row.cost_usd) for rid, row in rows.items()} == {
        "r1": ("completed", 0.02), "r2": ("pending", 0.0), "r3": ("failed", 0.02), "r4": ("cancelled", 0.0)}
    assert ledger.pending("k-open") == "r2" and ledger.pending("k-done") is None, "the torn last line is skipped"
    assert ledger.spent() == 0.04
    store = AssetStore(state)
    assert store.lookup("c" * 64) is not None and store.rejection("r" * 64) == "fal: content policy: flagged"

    (state / "ledger.jsonl").write_text(_line("submitted", "k-late", "r9"))
    import_legacy(Database(state / "state.db"), state)
    assert ledger.pending("k-late") is None and len(ledger.rows()) == 4, "imported once, not at every open"
