"""Local LoRA training: real safetensors files of placeholder weights, named as the trainer names them, ledgered."""

from __future__ import annotations

import hashlib
import json
import struct
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reelflow.providers.base import LoraTrainer
from reelflow.providers.local.faults import FaultSchedule
from reelflow.providers.local.provider import LocalProvider, shadow_cost
from reelflow.providers.local.train import NOTE, RANK, model_tag
from reelflow.schemas.errors import ProviderError, RateLimited
from reelflow.schemas.pricing import load_prices
from reelflow.schemas.requests import TrainRequest
from reelflow.schemas.wire.fal import FLUX2_TRAINER, WAN22_TRAINER, Z_IMAGE_TRAINER

NUMPY_DTYPES = {"F16": "<f2", "F32": "<f4"}


class RecordingTicket:
    """A ticket that records every call made on it."""

    def __init__(self, pending: str | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.pending = pending

    def resume(self, endpoint: str, *, pollable: bool = True) -> str | None:
        self.calls.append(("resume", endpoint))
        return self.pending

    @contextmanager
    def sending(self, endpoint: str) -> Iterator[RecordingTicket]:
        self._endpoint = endpoint
        yield self

    def accepted(self, request_id: str) -> None:
        self.calls.append(("submitted", self._endpoint, request_id))

    def unknown(self, endpoint: str, request_id: str, detail: str) -> None:
        self.calls.append(("unknown", endpoint, request_id))

    def completed(self, endpoint: str, request_id: str, cost_usd: float, billed_usd: float | None = None) -> None:
        self.calls.append(("completed", endpoint, request_id, cost_usd))

    def failed(self, endpoint: str, request_id: str, detail: str, cost_usd: float = 0.0) -> None:
        self.calls.append(("failed", endpoint, request_id, detail.split(":")[0], cost_usd))

    def cancelled(self, endpoint: str, request_id: str, detail: str) -> None:
        self.calls.append(("cancelled", endpoint, request_id))

    def cancel_requested(self, endpoint: str, request_id: str, detail: str) -> None:
        self.calls.append(("cancel_requested", endpoint, request_id))


def read_safetensors(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Tensors and metadata of a safetensors file, checking its header length, offsets and padding."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    assert length % 8 == 0 and 8 + length <= len(data)
    header = json.loads(data[8:8 + length])
    metadata = header.pop("__metadata__")
    assert all(isinstance(key, str) and isinstance(value, str) for key, value in metadata.items())
    body = data[8 + length:]
    tensors, end = {}, 0
    for name, entry in sorted(header.items(), key=lambda item: item[1]["data_offsets"]):
        start, stop = entry["data_offsets"]
        dtype = np.dtype(NUMPY_DTYPES[entry["dtype"]])
        assert start == end and stop - start == dtype.itemsize * int(np.prod(entry["shape"]))
        tensors[name] = np.frombuffer(body[start:stop], dtype=dtype).reshape(entry["shape"])
        end = stop
    assert end == len(body)
    return tensors, metadata


@pytest.fixture
def images_zip(tmp_path: Path) -> Path:
    path = tmp_path / "dataset.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("jnx_001.png", b"not really a png")
        archive.writestr("jnx_001.txt", "jnx_v3, a woman in a blue jacket")
    return path


def train(images_zip: Path, model: str = FLUX2_TRAINER, *, steps: int = 1000, seed: int = 7,
          trigger: str = "jnx_v3") -> TrainRequest:
    return TrainRequest(model=model, images_zip=images_zip, trigger=trigger, steps=steps, seed=seed)


def test_it_is_a_trainer_that_defaults_to_the_flux_2_trainer() -> None:
    provider = LocalProvider()
    assert isinstance(provider, LoraTrainer)
    assert provider.default_models["training"] == FLUX2_TRAINER


def test_training_writes_a_safetensors_file_with_its_metadata(images_zip: Path, tmp_path: Path) -> None:
    out = tmp_path / "weights"
    trained = LocalProvider().train_lora(train(images_zip), out)
    assert trained.weights == ["jnx_v3_flux-2.safetensors"] and trained.files == [out / "jnx_v3_flux-2.safetensors"]
    assert (trained.provider, trained.model, trained.trigger) == ("local", FLUX2_TRAINER, "jnx_v3")
    assert trained.request_id is not None and trained.request_id.startswith("local-")
    tensors, metadata = read_safetensors(trained.files[0])
    assert metadata == {
        "trigger": "jnx_v3", "trainer_model": FLUX2_TRAINER, "steps": "1000", "seed": "7",
        "images_zip_sha256": hashlib.sha256(images_zip.read_bytes()).hexdigest(), "lora_rank": str(RANK),
        "reelflow": NOTE,
    }
    down, up = tensors["transformer.blocks.0.attn.to_q.lora_A.weight"], tensors["transformer.blocks.0.attn.to_q.lora_B.weight"]
    assert down.shape == (RANK, 64) and up.shape == (64, RANK) and down.dtype == np.float16
    assert np.all(np.isfinite(down)) and 0 < float(np.abs(down).std()) < 1
    assert sorted(path.name for path in out.iterdir()) == ["jnx_v3_flux-2.safetensors"]  # no partial files left


def test_wan_gives_high_then_low_noise_files(images_zip: Path, tmp_path: Path) -> None:
    trained = LocalProvider().train_lora(train(images_zip, WAN22_TRAINER), tmp_path / "wan")
    assert trained.weights == ["jnx_v3_wan-22-image_high_noise.safetensors", "jnx_v3_wan-22-image_low_noise.safetensors"]
    assert [path.name for path in trained.files] == trained.weights
    (high, high_meta), (low, low_meta) = (read_safetensors(path) for path in trained.files)
    assert (high_meta["transformer"], low_meta["transformer"]) == ("high", "low")
    assert high.keys() == low.keys()
    assert not np.array_equal(high["transformer.blocks.1.attn.to_v.lora_A.weight"],
                              low["transformer.blocks.1.attn.to_v.lora_A.weight"])


def test_file_names_use_safe_characters_only(images_zip: Path, tmp_path: Path) -> None:
    trained = LocalProvider().train_lora(train(images_zip, Z_IMAGE_TRAINER, trigger="../Jinx v3!"), tmp_path / "w")
    assert trained.weights == ["Jinx-v3_z-image.safetensors"] and trained.files[0].parent == tmp_path / "w"
    assert model_tag("someone/odd model:v2") == "odd-model-v2"


def test_the_same_request_gives_identical_bytes(images_zip: Path, tmp_path: Path) -> None:
    one = LocalProvider().train_lora(train(images_zip), tmp_path / "one").files[0].read_bytes()
    two = LocalProvider().train_lora(train(images_zip), tmp_path / "two").files[0].read_bytes()
    assert one == two
    for changed in (train(images_zip, seed=8), train(images_zip, steps=1200)):
        assert LocalProvider().train_lora(changed, tmp_path / "other").files[0].read_bytes() != one


@pytest.mark.parametrize(("model", "steps"), [(FLUX2_TRAINER, 1000), (WAN22_TRAINER, 600), (Z_IMAGE_TRAINER, 50)])
def test_shadow_cost_is_the_price_table_s_for_the_steps(images_zip: Path, tmp_path: Path, model: str, steps: int) -> None:
    request = train(images_zip, model, steps=steps)
    price = load_prices().cost(model, steps=steps)
    assert shadow_cost(request) == price > 0
    assert LocalProvider().train_lora(request, tmp_path / "w").cost_usd == price


def test_training_is_ledgered_like_a_cloud_call(images_zip: Path, tmp_path: Path) -> None:
    ticket = RecordingTicket()
    trained = LocalProvider().train_lora(train(images_zip), tmp_path / "w", ticket=ticket)
    assert ticket.calls == [
        ("resume", FLUX2_TRAINER), ("submitted", FLUX2_TRAINER, trained.request_id),
        ("completed", FLUX2_TRAINER, trained.request_id, load_prices().cost(FLUX2_TRAINER, steps=1000)),
    ]


def test_a_fault_fails_the_call_before_any_file(images_zip: Path, tmp_path: Path) -> None:
    ticket = RecordingTicket()
    with pytest.raises(RateLimited) as caught:
        LocalProvider(FaultSchedule(rates={"rate_limit": 1.0})).train_lora(train(images_zip), tmp_path / "w", ticket=ticket)
    assert isinstance(caught.value, ProviderError) and not (tmp_path / "w").exists()
    assert [call[0] for call in ticket.calls] == ["resume", "submitted", "failed"]
    assert ticket.calls[-1][3:] == ("rate_limit", 0.0)
