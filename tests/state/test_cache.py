"""The content cache: keys from content only, hits only for intact assets, one generation per key."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from reelflow.schemas.assets import AssetRef, MediaInfo
from reelflow.schemas.errors import MediaError
from reelflow.schemas.requests import Generation, LoraRef
from reelflow.state.cache import NotCached, Operation, dry_run, run_cached
from reelflow.state.ledger import Charge, Ledger, LedgerTicket
from reelflow.state.store import AssetStore

INFO = MediaInfo(kind="image", width=8, height=8)


def maker(calls: list[int], colour: tuple[int, int, int] = (200, 10, 10), delay: float = 0.0):
    def make(scratch: Path) -> Generation:
        time.sleep(delay)
        calls.append(1)
        out = scratch / "out.png"
        Image.new("RGB", (8, 8), colour).save(out)
        return Generation(provider="local", model="m", files=[out], cost_usd=0.02, request_id="r1")
    return make


def op(**changes) -> Operation:
    fields = {"stage": "keyframes", "version": 1, "provider": "local", "model": "m", "params": {"prompt": "a"}}
    return Operation(**(fields | changes))


def test_key_depends_on_content_not_paths(tmp_path: Path) -> None:
    a = AssetRef(path=tmp_path / "a.png", sha256="1" * 64, media=INFO)
    b = AssetRef(path=tmp_path / "elsewhere" / "b.png", sha256="1" * 64, media=INFO)
    assert op(inputs=[a]).key == op(inputs=[b]).key
    assert op(params={"prompt": "a", "w": 1}).key == op(params={"w": 1, "prompt": "a"}).key
    base = op().key
    for changed in (op(stage="upscale"), op(version=2), op(provider="fal"), op(model="n"), op(params={"prompt": "b"}),
                    op(inputs=[a])):
        assert changed.key != base


def test_second_run_is_a_hit_with_no_cost(tmp_path: Path) -> None:
    store, calls = AssetStore(tmp_path), []
    first = run_cached(store, op(), maker(calls))
    second = run_cached(store, op(), maker(calls))
    assert calls == [1]
    assert (first.provider_calls, first.cost_usd) == (1, 0.02)
    assert (second.provider_calls, second.cost_usd) == (0, 0.0)
    assert second.file == first.file and second.file.path.is_file()
    assert second.provenance.request_id == "r1" and second.provenance.cost_usd == 0.02
    assert first.file.media == MediaInfo(kind="image", width=8, height=8)


def test_missing_or_altered_asset_is_not_a_hit(tmp_path: Path) -> None:
    store, calls = AssetStore(tmp_path), []
    ref = run_cached(store, op(), maker(calls)).file
    ref.path.unlink()
    assert run_cached(store, op(), maker(calls)).file.sha256 == ref.sha256
    ref.path.chmod(0o644)  # blobs are stored read-only
    ref.path.write_bytes(b"tampered")
    run_cached(store, op(), maker(calls))
    assert len(calls) == 3 and ref.path.read_bytes() != b"tampered"


def test_concurrent_equal_operations_generate_once(tmp_path: Path) -> None:
    store, calls = AssetStore(tmp_path), []
    threads = [threading.Thread(target=run_cached, args=(store, op(), maker(calls, delay=0.2))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [1]


def test_failed_generation_records_nothing(tmp_path: Path) -> None:
    store = AssetStore(tmp_path)

    def broken(scratch: Path) -> Generation:
        (scratch / "half.png").write_bytes(b"\x89PNG")
        raise RuntimeError("provider went away")

    with pytest.raises(RuntimeError, match="provider went away"):
        run_cached(store, op(), broken)
    assert store.lookup(op().key) is None
    assert not any((tmp_path / "tmp").iterdir())


def test_a_paid_request_completes_only_with_its_cache_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash between the provider's answer and the cache entry leaves the request pending: the next run polls
    it and pays nothing more. (Settled first, it would be paid with nothing in the cache: the next run paid again.)"""
    store = AssetStore(tmp_path / ".reelflow")
    ledger = Ledger(store.db)
    submits: list[str] = []

    def make(scratch: Path, ticket: LedgerTicket) -> Generation:
        request_id = ticket.resume("fal-ai/x")
        if request_id is None:
            request_id = f"req-{len(submits) + 1}"
            submits.append(request_id)
            ticket.submitted("fal-ai/x", request_id)
        out = scratch / "out.png"
        Image.new("RGB", (8, 8), (1, 2, 3)).save(out)
        ticket.completed("fal-ai/x", request_id, 0.5)
        return Generation(provider="fal", model="m", files=[out], cost_usd=0.5, request_id=request_id)

    def run() -> None:
        ticket = ledger.ticket("k", "fal", Charge(run="r", price_usd=0.5), deferred=True)
        run_cached(store, op(provider="fal"), lambda scratch: make(scratch, ticket), price=0.5, settlement=ticket)

    real_save = AssetStore.save
    monkeypatch.setattr(AssetStore, "save", lambda *args, **kwargs: (_ for _ in ()).throw(RuntimeError("killed")))
    with pytest.raises(RuntimeError, match="killed"):
        run()
    assert [row.status for row in ledger.rows()] == ["pending"], "paid, not yet kept: still pending"
    monkeypatch.setattr(AssetStore, "save", real_save)
    run()
    assert submits == ["req-1"], "the next run polled the same request"
    [row] = ledger.rows()
    assert (row.status, row.cost_usd) == ("completed", 0.5)
    run()
    assert submits == ["req-1"] and len(ledger.rows()) == 1, "then it is a cache hit"


def test_an_output_that_fails_after_the_answer_is_still_settled(tmp_path: Path) -> None:
    store = AssetStore(tmp_path / ".reelflow")
    ledger = Ledger(store.db)
    ticket = ledger.ticket("k", "fal", Charge(run="r", price_usd=0.5), deferred=True)

    def make(scratch: Path) -> Generation:
        ticket.submitted("fal-ai/x", "req-1")
        out = scratch / "out.unknown"
        out.write_text("not media")
        ticket.completed("fal-ai/x", "req-1", 0.5)
        return Generation(provider="fal", model="m", files=[out], cost_usd=0.5, request_id="req-1")

    with pytest.raises(MediaError):
        run_cached(store, op(provider="fal"), make, price=0.5, settlement=ticket)
    assert [(row.status, row.cost_usd) for row in ledger.rows()] == [("completed", 0.5)], "billed: spent"


def test_a_walk_to_the_first_miss_stops_there_without_making_or_waiting(tmp_path: Path) -> None:
    """The check a shot makes before its stages: a hit is read back, a miss ends the walk at once, even while another
    thread holds the key's lock making it."""
    store, calls = AssetStore(tmp_path), []
    made = run_cached(store, op(), maker(calls))
    found: list[object] = []

    def walk() -> None:
        with dry_run(to_first_miss=True):
            found.append(run_cached(store, op(), maker(calls)).file)
            try:
                run_cached(store, op(params={"prompt": "b"}), maker(calls))
            except NotCached as exc:
                found.append(str(exc))

    with store.lock(op(params={"prompt": "b"}).key):  # a make of the missing operation in flight
        walker = threading.Thread(target=walk, daemon=True)
        walker.start()
        walker.join(timeout=5)
        assert not walker.is_alive(), "the walk waited on the make in flight"
    assert found == [made.file, "keyframes is not in the cache"]
    assert calls == [1]
    assert run_cached(store, op(params={"prompt": "b"}), maker(calls)).provider_calls == 1  # outside: made as before


def test_a_lora_stage_cached_when_loras_were_keyed_by_path_is_a_hit_by_sha256(tmp_path: Path) -> None:
    """Keys made before a LoRA was keyed by its weights' sha256 held its registry path: such a record is found
    through the registry, indexed under the new key, and nothing is made again."""
    root = tmp_path / "proj"
    url, sha = "https://v3.fal.media/files/x/ana.safetensors", "a" * 64
    (root / "visual").mkdir(parents=True)
    entry = {"base_model": "flux-2", "path": url, "sha256": sha, "trigger": "ana_tst"}
    (root / "visual" / "lora_registry.json").write_text(json.dumps({"characters": {"ANA": [entry]}}))
    store, calls = AssetStore(root / ".reelflow"), []
    weights = {"path": url, "scale": 0.5, "trigger": "ana_tst", "character": "ANA"}
    old_way = op(params={"prompt": "a", "loras": [LoraRef(**weights).model_dump(mode="json")]})  # no sha256 known
    now = op(params={"prompt": "a", "loras": [LoraRef(**weights, sha256=sha).model_dump(mode="json")]})
    elsewhere = LoraRef(**(weights | {"path": "https://v3.fal.media/files/y/new.safetensors"}), sha256=sha)
    assert old_way.key != now.key == op(params={"prompt": "a", "loras": [elsewhere.model_dump(mode="json")]}).key

    made = run_cached(store, old_way, maker(calls))
    found = run_cached(store, now, maker(calls))
    assert calls == [1] and (found.provider_calls, found.file) == (0, made.file)
    record = store.lookup(now.key)
    assert record is not None and record.key == now.key, "indexed under the new key"
    other = op(params={"prompt": "a", "loras": [LoraRef(**weights, sha256="b" * 64).model_dump(mode="json")]})
    assert run_cached(store, other, maker(calls)).provider_calls == 1, "weights the registry does not list: made"
