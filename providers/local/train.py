"""Placeholder LoRA weights: real safetensors files, named and shaped like a trainer's, holding untrained numbers."""

from __future__ import annotations

import hashlib
import json
import re
import struct

import numpy as np

from reelflow.schemas.requests import TrainRequest
from reelflow.schemas.wire.fal import WAN22_TRAINER

RANK = 16
WIDTH = 64
BLOCKS = 2
PROJECTIONS = ("to_q", "to_k", "to_v", "to_out.0")
NOTE = "local provider: untrained placeholder weights"
DTYPES: dict[np.dtype, str] = {np.dtype("<f2"): "F16", np.dtype("<f4"): "F32"}
# WAN 2.2 has two noise experts; its trainer gives one adapter for each, high noise first (as fal returns them).
EXPERTS: dict[str, tuple[str, ...]] = {WAN22_TRAINER: ("high_noise", "low_noise")}


def _safe(text: str) -> str:
    """`text` with every run of characters other than letters, digits, `-` and `_` made one `-`."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")


def model_tag(model: str) -> str:
    """A short file-name tag for a trainer: `fal-ai/flux-2-trainer` -> `flux-2`."""
    return _safe(model.rsplit("/", 1)[-1].removesuffix("-trainer")) or "lora"


def weight_names(request: TrainRequest) -> list[str]:
    """The files a training writes: `<trigger>_<model tag>[_high_noise|_low_noise].safetensors`, in that order."""
    stem = f"{_safe(request.trigger) or 'lora'}_{model_tag(request.model)}"
    experts = EXPERTS.get(request.model)
    if experts is None:
        return [f"{stem}.safetensors"]
    return [f"{stem}_{expert}.safetensors" for expert in experts]


def placeholder_tensors(request: TrainRequest, zip_sha256: str, expert: str = "") -> dict[str, np.ndarray]:
    """LoRA down/up matrices for a few attention projections (float16), drawn from the zip, seed, steps and expert."""
    seed = int.from_bytes(hashlib.sha256(f"{zip_sha256}|{request.seed}|{request.steps}|{expert}".encode()).digest()[:8])
    draw = np.random.Generator(np.random.PCG64(seed))
    tensors: dict[str, np.ndarray] = {}
    for block in range(BLOCKS):
        for projection in PROJECTIONS:
            key = f"transformer.blocks.{block}.attn.{projection}"
            tensors[f"{key}.lora_A.weight"] = (draw.standard_normal((RANK, WIDTH)) * 0.02).astype("<f2")
            tensors[f"{key}.lora_B.weight"] = (draw.standard_normal((WIDTH, RANK)) * 0.002).astype("<f2")
    return tensors


def placeholder_metadata(request: TrainRequest, zip_sha256: str, expert: str = "") -> dict[str, str]:
    """The `__metadata__` a placeholder file carries: what it stands in for and that nothing was trained."""
    metadata = {
        "trigger": request.trigger,
        "trainer_model": request.model,
        "steps": str(request.steps),
        "seed": str(request.seed),
        "images_zip_sha256": zip_sha256,
        "lora_rank": str(RANK),
        "reelflow": NOTE,
    }
    return metadata | ({"transformer": expert.removesuffix("_noise")} if expert else {})


def safetensors_bytes(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """The safetensors encoding: header length (u64 little-endian), JSON header padded to 8 bytes, tensor bytes."""
    header: dict[str, object] = {"__metadata__": metadata}
    chunks: list[bytes] = []
    offset = 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        data = array.tobytes()
        header[name] = {"dtype": DTYPES[array.dtype], "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    encoded = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    return struct.pack("<Q", len(encoded)) + encoded + b"".join(chunks)


def placeholder_files(request: TrainRequest, zip_sha256: str) -> list[tuple[str, bytes]]:
    """Each weight file of the training as (file name, safetensors bytes), in the trainer's order."""
    experts = EXPERTS.get(request.model, ("",))
    return [
        (name, safetensors_bytes(placeholder_tensors(request, zip_sha256, expert),
                                 placeholder_metadata(request, zip_sha256, expert)))
        for name, expert in zip(weight_names(request), experts, strict=True)
    ]
