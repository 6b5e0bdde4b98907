"""A character's candidates folder: its manifest read and written atomically, and the person's selection saved."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pydantic import ValidationError

from reelflow.schemas.characters import SELECTION_RANGE, CandidateManifest
from reelflow.schemas.errors import ContractError
from reelflow.state.generated import write_generated
from reelflow.state.store import held

MANIFEST = "manifest.json"


def candidates_dir(root: Path, character: str) -> Path:
    return root / "visual" / "lora_candidates" / character


def manifest_path(root: Path, character: str) -> Path:
    return candidates_dir(root, character) / MANIFEST


def read_candidates(root: Path, character: str) -> CandidateManifest | None:
    """The character's candidate manifest, or None before any candidates were made."""
    path = manifest_path(root, character)
    if not path.is_file():
        return None
    try:
        return CandidateManifest.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "document"
        raise ContractError(f"{path.relative_to(root)}: {where}: {error['msg']}") from None


def require_candidates(root: Path, character: str) -> CandidateManifest:
    manifest = read_candidates(root, character)
    if manifest is None or not manifest.candidates:
        raise ContractError(f"visual/lora_candidates/{character}/{MANIFEST}: no candidates yet "
                            f"(run: reelflow candidates {root} {character})")
    return manifest


def write_candidates(root: Path, manifest: CandidateManifest) -> Path:
    return write_generated(root, manifest_path(root, manifest.character), manifest.model_dump_json(indent=2).encode())


def selection_problems(manifest: CandidateManifest, files: list[str], *, source: str) -> list[str]:
    """Every reason `files` cannot be the selection: unknown or repeated names, and a count outside 15-25."""
    known = {candidate.file for candidate in manifest.candidates}
    problems = [f"{source}: {name}: not a candidate of {manifest.character}" for name in files if name not in known]
    repeated = sorted({name for name in files if files.count(name) > 1})
    problems += [f"{source}: {name}: listed more than once" for name in repeated]
    low, high = SELECTION_RANGE
    if not low <= len(set(files)) <= high:
        problems.append(f"{source}: {len(set(files))} images selected; a LoRA dataset needs {low}-{high}")
    return problems


def save_selection(root: Path, character: str, files: list[str], *, by: str) -> CandidateManifest:
    """Mark exactly `files` selected in the manifest (read fresh under its lock, so nothing else in it is lost)."""
    with held(root / ".reelflow", f"candidates-{character}"):
        manifest = require_candidates(root, character)
        known = {candidate.file for candidate in manifest.candidates}
        unknown = [name for name in files if name not in known]
        if unknown:
            raise ContractError(f"{by}: {unknown[0]}: not a candidate of {character}")
        chosen = set(files)
        for candidate in manifest.candidates:
            candidate.selected = candidate.file in chosen
        manifest.selected_by = by
        manifest.selected_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        write_candidates(root, manifest)
    return manifest


def record_candidates(root: Path, made: CandidateManifest) -> CandidateManifest:
    """Write the candidates a run made into the manifest: a person's selection and the candidates this run did not
    make (an earlier, longer run's) are kept."""
    with held(root / ".reelflow", f"candidates-{made.character}"):
        old = read_candidates(root, made.character)
        if old is not None:
            selected = {candidate.file for candidate in old.selected()}
            for candidate in made.candidates:
                candidate.selected = candidate.file in selected
            names = {candidate.file for candidate in made.candidates}
            made.candidates += [candidate for candidate in old.candidates if candidate.file not in names]
            made.candidates.sort(key=lambda candidate: candidate.file)
            made.selected_by, made.selected_at = old.selected_by, old.selected_at
        made.cost_usd = round(sum(candidate.cost_usd for candidate in made.candidates), 6)
        write_candidates(root, made)
    return made
