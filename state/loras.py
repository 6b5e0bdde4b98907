"""`visual/lora_registry.json`: read by every render, changed by training one writer at a time."""

from __future__ import annotations

from pathlib import Path

from reelflow.schemas.errors import ContractError
from reelflow.schemas.loras import LoraEntry, LoraRegistry
from reelflow.state.store import held, write_atomic

REGISTRY = Path("visual") / "lora_registry.json"


def read_registry(root: Path) -> LoraRegistry:
    """The project's trained LoRAs (none before the first training)."""
    path = root / REGISTRY
    if not path.is_file():
        return LoraRegistry()
    try:
        return LoraRegistry.model_validate_json(path.read_bytes())
    except ValueError as exc:
        raise ContractError(f"lora_registry.json: {' '.join(str(exc).split())[:200]}") from None


def register_loras(root: Path, character: str, entries: list[LoraEntry]) -> Path:
    """Make `entries` the character's LoRAs for their base model; the entries they replace are kept as retired."""
    with held(root / ".reelflow", "lora-registry"):
        registry = read_registry(root)
        registry.register(character, entries)
        write_atomic(root / REGISTRY, registry.model_dump_json(indent=2, exclude_none=True).encode())
    return root / REGISTRY
