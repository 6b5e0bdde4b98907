"""Earlier state formats: nothing already paid for is paid again.

A project rendered before the state database is imported once. The earlier layout kept the ledger in
`.reelflow/ledger.jsonl` (one JSON event per line: submitted, completed, failed, cancelled), the cache index as
`.reelflow/cache/<k[:2]>/<key>.json` and rejections as `.reelflow/rejections/<key>.txt`. They are read once, in one
transaction, and left where they are. A torn line (a crash mid-append) is skipped: it is the one line that never
finished being written.

Cache keys made before a LoRA was keyed by its weights' sha256 held its registry path instead; `path_keyed_loras`
gives the params such a key was made from, so a cache lookup can find the record (state/cache.py).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from itertools import product
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite3

    from reelflow.state.db import Database

MARK = "legacy_import"
SETTLED = {"completed", "failed", "cancelled"}
# Prefect's logger for reelflow, by name: the state database is opened by processes that need not import Prefect.
LOGGER = logging.getLogger("prefect.reelflow")


def _events(path: Path) -> tuple[list[dict[str, Any]], int]:
    events, torn = [], 0
    if not path.is_file():
        return events, torn
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            torn += 1
            continue
        if isinstance(event, dict) and {"event", "key", "provider", "endpoint", "request_id"} <= event.keys():
            events.append(event)
        else:
            torn += 1
    return events, torn


def _import_ledger(sql: sqlite3.Connection, path: Path) -> int:
    events, torn = _events(path)
    if torn:
        LOGGER.warning("%s: skipped %s unreadable line(s) while importing", path, torn)
    for event in events:
        at = float(event.get("at") or time.time())
        if event["event"] == "submitted":
            sql.execute(
                "INSERT INTO requests (cache_key, provider, endpoint, request_id, status, shadow, submitted_at) "
                "VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                (event["key"], event["provider"], event["endpoint"], event["request_id"], int(event["provider"] == "local"), at),
            )
        elif event["event"] in SETTLED:
            cost = float(event.get("cost_usd") or 0.0)
            updated = sql.execute(
                "UPDATE requests SET status = ?, cost_usd = ?, price_usd = MAX(price_usd, ?), detail = ?, settled_at = ? "
                "WHERE request_id = ? AND cache_key = ? AND status = 'pending'",
                (event["event"], cost, cost, event.get("detail") or "", at, event["request_id"], event["key"]),
            ).rowcount
            if not updated:
                sql.execute(
                    "INSERT INTO requests (cache_key, provider, endpoint, request_id, status, price_usd, cost_usd, detail, "
                    "submitted_at, settled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (event["key"], event["provider"], event["endpoint"], event["request_id"], event["event"], cost, cost,
                     event.get("detail") or "", at, at),
                )
    return len(events)


def _import_cache(sql: sqlite3.Connection, folder: Path) -> int:
    count = 0
    for path in sorted(folder.glob("*/*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or record.get("key") != path.stem:
            continue
        sql.execute(
            "INSERT INTO cache (cache_key, record, created_at) VALUES (?, ?, ?) ON CONFLICT (cache_key) DO NOTHING",
            (path.stem, json.dumps(record), path.stat().st_mtime),
        )
        count += 1
    return count


def _import_rejections(sql: sqlite3.Connection, folder: Path) -> int:
    count = 0
    for path in sorted(folder.glob("*.txt")):
        sql.execute(
            "INSERT INTO rejections (cache_key, provider, reason, at) VALUES (?, '', ?, ?) ON CONFLICT (cache_key) DO NOTHING",
            (path.stem, path.read_text(encoding="utf-8", errors="replace"), path.stat().st_mtime),
        )
        count += 1
    return count


def path_keyed_loras(params: dict[str, Any], paths: Callable[[], dict[str, list[str]]]) -> list[dict[str, Any]]:
    """`params` as they were keyed before LoRAs were keyed by sha256: each LoRA that has one at a registry path for
    its weights instead (`paths()`: by sha256), one set per combination of paths; none if no LoRA has a sha256."""
    loras = params.get("loras")
    if not isinstance(loras, list) or not any(isinstance(lora, dict) and "sha256" in lora for lora in loras):
        return []
    registered = paths()
    choices = [
        [{name: value for name, value in lora.items() if name != "sha256"} | {"path": path}
         for path in registered.get(lora["sha256"], [])]
        if isinstance(lora, dict) and "sha256" in lora else [lora]
        for lora in loras
    ]
    return [params | {"loras": list(combination)} for combination in product(*choices)]


def import_legacy(db: Database, state_dir: Path) -> None:
    """Bring the earlier files' ledger, cache index and rejections into `db`, once per project."""
    if db.meta(MARK) is not None:
        return
    with db.write() as sql:
        if sql.execute("SELECT value FROM meta WHERE name = ?", (MARK,)).fetchone() is not None:
            return
        counts = {
            "ledger": _import_ledger(sql, state_dir / "ledger.jsonl"),
            "cache": _import_cache(sql, state_dir / "cache"),
            "rejections": _import_rejections(sql, state_dir / "rejections"),
        }
        sql.execute("INSERT INTO meta (name, value) VALUES (?, ?)", (MARK, json.dumps(counts | {"at": time.time()})))
    if any(counts.values()):
        LOGGER.info("%s: imported the earlier ledger, cache and rejections: %s", state_dir, counts)
