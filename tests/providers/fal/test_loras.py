"""LoRA weights fal can read: a young URL that answers is sent as it is; a gone or old one, or a local path, is
uploaded from the project's copy and recorded in the registry; nothing is paid for weights fal cannot read; the cache
key holds the weights' sha256, never where they are."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reelflow.media.hashing import sha256_file
from reelflow.providers.fal import endpoints
from reelflow.providers.fal.loras import readable_loras
from reelflow.providers.fal.provider import FalProvider
from reelflow.schemas.errors import BadRequest
from reelflow.schemas.requests import ImageRequest, LoraRef
from reelflow.state.loras import REGISTRY, read_registry

from fakes.fal import FakeFal

WEIGHTS = Path("visual/loras/ANA/ANA_flux2_0123abcd.safetensors")


def days_ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).replace(microsecond=0).isoformat()


def project(root: Path, content: bytes, **entry: object) -> Path:
    """A project folder with ANA's FLUX.2 weights under visual/loras and one registry entry for them."""
    (root / WEIGHTS).parent.mkdir(parents=True)
    (root / WEIGHTS).write_bytes(content)
    fields = {"base_model": "flux-2", "path": WEIGHTS.as_posix(), "trigger": "ana_tst", "type": "flux2",
              "sha256": sha256_file(root / WEIGHTS)} | entry
    (root / REGISTRY).write_text(json.dumps({"characters": {"ANA": [fields]}}))
    return root


def edit(root: Path, **fields: object) -> None:
    """Change ANA's registry entry as training or a person would."""
    registry = json.loads((root / REGISTRY).read_text())
    registry["characters"]["ANA"][0] |= fields
    (root / REGISTRY).write_text(json.dumps(registry))


def lora(root: Path) -> LoraRef:
    """ANA's adapter as a keyframe request takes it, from the registry as it is on disk now."""
    [ref] = read_registry(root).for_model(["ANA"], endpoints.FLUX2_LORA, root=root)
    return ref


def keyframe(ref: LoraRef) -> ImageRequest:
    return ImageRequest(model=endpoints.FLUX2_LORA, prompt="ana_tst at the window", width=512, height=768, seed=3,
                        loras=(ref,))


def cdn_url(provider: FalProvider, path: Path) -> str:
    """A URL on the fake's CDN for the file, past the provider's per-process upload cache (as a trainer's is)."""
    return str(provider.queue.client.upload_file(path))


def test_a_young_url_that_answers_is_sent_as_it_is(provider: FalProvider, fake: FakeFal, tmp_path: Path) -> None:
    root = project(tmp_path / "proj", b"young weights")
    url = cdn_url(provider, root / WEIGHTS)
    edit(root, path=url, file=WEIGHTS.as_posix(), trained_at=days_ago(2))
    before = (root / REGISTRY).read_bytes()
    uploads = len(fake.uploads)
    generation = provider.generate_image(keyframe(lora(root)), tmp_path / "key.png")
    assert fake.jobs[generation.request_id].body["loras"] == [{"path": url, "scale": 1.0}]
    assert len(fake.uploads) == uploads and (root / REGISTRY).read_bytes() == before, "no upload, nothing recorded"


def test_a_gone_url_is_uploaded_again_from_the_project_and_recorded(
    provider: FalProvider, fake: FakeFal, tmp_path: Path
) -> None:
    root = project(tmp_path / "proj", b"weights fal lost")
    url = cdn_url(provider, root / WEIGHTS)
    edit(root, path=url, file=WEIGHTS.as_posix(), trained_at=days_ago(1))
    fake.expire(url)

    generation = provider.generate_image(keyframe(lora(root)), tmp_path / "key.png")
    [sent] = fake.jobs[generation.request_id].body["loras"]
    assert sent["path"] != url and fake.serves(sent["path"]) and fake.uploads[-1] == sha256_file(root / WEIGHTS)
    [entry] = read_registry(root).characters["ANA"]
    assert (entry.url, entry.path, entry.sha256) == (sent["path"], url, sha256_file(root / WEIGHTS))
    assert entry.url_at is not None and datetime.fromisoformat(entry.url_at) > datetime.now(UTC) - timedelta(minutes=5)

    uploads = len(fake.uploads)
    again = provider.generate_image(keyframe(lora(root)), tmp_path / "again.png")
    assert fake.jobs[again.request_id].body["loras"] == [sent] and len(fake.uploads) == uploads, "the recorded URL"


def test_a_url_past_fals_retention_is_replaced_before_it_goes(provider: FalProvider, fake: FakeFal, tmp_path: Path) -> None:
    root = project(tmp_path / "proj", b"old weights", trained_at=days_ago(30))
    old = cdn_url(provider, root / WEIGHTS)
    edit(root, url=old, url_at=days_ago(8))
    [ref] = readable_loras(provider.queue, keyframe(lora(root))).loras
    assert ref.url != old and fake.serves(ref.url) and fake.serves(old), "replaced while fal still had it"
    assert read_registry(root).characters["ANA"][0].url == ref.url


def test_a_local_path_is_uploaded_the_first_time(provider: FalProvider, fake: FakeFal, tmp_path: Path) -> None:
    root = project(tmp_path / "proj", b"local weights", trained_at=days_ago(40))
    [ref] = readable_loras(provider.queue, keyframe(lora(root))).loras
    assert fake.serves(ref.url) and fake.uploads == [sha256_file(root / WEIGHTS)]
    [entry] = read_registry(root).characters["ANA"]
    assert (entry.path, entry.url) == (WEIGHTS.as_posix(), ref.url)


@pytest.mark.parametrize(("change", "message"), [
    (lambda root: (root / WEIGHTS).unlink(), r"is gone and .*ANA_flux2_0123abcd\.safetensors is missing"),
    (lambda root: (root / WEIGHTS).write_bytes(b"edited"), r"is not the registered weights \(its sha256 differs\)"),
])
def test_weights_fal_cannot_be_given_stop_before_anything_is_paid(
    provider: FalProvider, fake: FakeFal, tmp_path: Path, change: Callable[[Path], object], message: str
) -> None:
    root = project(tmp_path / "proj", b"weights at risk")
    url = cdn_url(provider, root / WEIGHTS)
    edit(root, path=url, file=WEIGHTS.as_posix())
    ref = lora(root)
    fake.expire(url)
    change(root)
    with pytest.raises(BadRequest, match=message):
        provider.generate_image(keyframe(ref), tmp_path / "key.png")
    assert fake.total_submits() == 0


def test_the_cache_key_holds_the_weights_never_their_url(provider: FalProvider, tmp_path: Path) -> None:
    root = project(tmp_path / "proj", b"keyed weights")
    before = lora(root)
    after = before.model_copy(update={"path": "https://v3.fal.media/files/a/b.safetensors", "url": "https://x/y"})
    params = provider.cache_params(keyframe(before))
    assert params == provider.cache_params(keyframe(after))
    assert params["loras"] == [{"sha256": sha256_file(root / WEIGHTS), "scale": 1.0, "trigger": "ana_tst",
                                "character": "ANA", "transformer": None}]
    assert str(root) not in json.dumps(params)
