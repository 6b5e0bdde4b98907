"""`visual/lora_registry.json`: read by every render, changed by training (and by a render that uploads weights
again) one writer at a time."""

from __future__ import annotations

from pathlib import Path

from reelflow.media.hashing import sha256_unchanged
from reelflow.schemas.errors import ContractError
from reelflow.schemas.loras import LoraEntry, LoraRegistry
from reelflow.state.generated import write_generated
from reelflow.state.store import held

REGISTRY = Path("visual") / "lora_registry.json"


def read_registry(root: Path) -> LoraRegistry:
    """The project's trained LoRAs (none before the first training); an entry written by hand without a sha256 gets
    its local weights' one, so every adapter with weights in the project is keyed by their content."""
    path = root / REGISTRY
    if not path.is_file():
        return LoraRegistry()
    try:
        registry = LoraRegistry.model_validate_json(path.read_bytes())
    except ValueError as exc:
        raise ContractError(f"lora_registry.json: {' '.join(str(exc).split())[:200]}") from None
    for entry in registry.entries():
        if entry.sha256 is None and entry.local is not None and (root / entry.local).is_file():
            entry.sha256 = sha256_unchanged(root / entry.local)
    return registry


def _write(root: Path, registry: LoraRegistry) -> Path:
    return write_generated(root, root / REGISTRY, registry.model_dump_json(indent=2, exclude_none=True).encode())


def register_loras(root: Path, character: str, entries: list[LoraEntry]) -> Path:
    """Make `entries` the character's LoRAs for their base model; the entries they replace are kept as retired."""
    with held(root / ".reelflow", "lora-registry"):
        registry = read_registry(root)
        registry.register(character, entries)
        return _write(root, registry)


def record_url(root: Path, sha256: str, url: str, at: str) -> None:
    """Note on every entry with these weights where the service reads them now, and since when (`at`, ISO 8601)."""
    with held(root / ".reelflow", "lora-registry"):
        registry = read_registry(root)
        entries = [entry for entry in registry.entries() if entry.sha256 == sha256]
        for entry in entries:
            entry.url, entry.url_at = url, at
        if entries:
            _write(root, registry)


def registered_paths(root: Path) -> dict[str, list[str]]:
    """Each weights' sha256 and the registry paths they are listed at (current and retired entries)."""
    paths: dict[str, list[str]] = {}
    for entry in read_registry(root).entries():
        if entry.sha256 is not None and entry.path not in paths.setdefault(entry.sha256, []):
            paths[entry.sha256].append(entry.path)
    return paths
