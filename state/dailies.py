"""Read and change an episode's dailies, one writer at a time (render, review page, CLI): the checkout's file, or in
shared state the document every host reads (state/documents.py), exported to that file."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from reelflow.schemas.dailies import Dailies, Decision
from reelflow.schemas.errors import ContractError
from reelflow.schemas.load import ProjectFolder
from reelflow.schemas.storyboard import Storyboard
from reelflow.state.documents import document_held, read_document, shared, write_document
from reelflow.state.store import held, write_atomic


def now() -> str:
    """The time of a history event: UTC, ISO 8601, to the second."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def read_dailies(folder: ProjectFolder, storyboard: Storyboard) -> Dailies:
    """The episode's dailies, with a pending entry for every storyboard shot it does not list yet."""
    path = folder.dailies_path(storyboard.episode)
    numbers = [shot.shot for shot in storyboard.shots]
    body = read_document(folder.state_dir, "dailies", storyboard.episode, path)
    if body is None:
        return Dailies(project=folder.project.code, episode=storyboard.episode).with_shots(numbers)
    try:
        dailies = Dailies.model_validate_json(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        raise ContractError(f"{path.name}: {where}: {error['msg']}") from None
    if dailies.episode != storyboard.episode:
        raise ContractError(f"{path.name}: episode: {dailies.episode} does not match the file name")
    return dailies.with_shots(numbers)


@contextmanager
def changing_dailies(folder: ProjectFolder, storyboard: Storyboard) -> Iterator[Dailies]:
    """Hold the dailies file against other writers, yield it, and save what the block changed."""
    path = folder.dailies_path(storyboard.episode)
    with held(folder.root / ".reelflow", path.name):
        if not shared(folder.state_dir):
            dailies = read_dailies(folder, storyboard)
            yield dailies
            write_dailies(path, dailies)
            return
        with document_held(folder.state_dir, "dailies", storyboard.episode):
            dailies = read_dailies(folder, storyboard)
            yield dailies
            write_document(folder.state_dir, "dailies", storyboard.episode, _dumped(dailies), path)


def _dumped(dailies: Dailies) -> bytes:
    return dailies.model_dump_json(indent=2, exclude_none=True).encode()


def write_dailies(path: Path, dailies: Dailies) -> None:
    write_atomic(path, _dumped(dailies))


def apply_decisions(
    folder: ProjectFolder, storyboard: Storyboard, decisions: dict[int, Decision], *, by: str, note: str | None = None
) -> Dailies:
    """Record reviewer decisions; if any is refused (unknown or pending shot), the file is left as it was."""
    dailies, _ = apply_seen_decisions(folder, storyboard, decisions, {}, by=by, note=note)
    return dailies


def apply_seen_decisions(
    folder: ProjectFolder, storyboard: Storyboard, decisions: dict[int, Decision], seen: dict[int, int], *,
    by: str, note: str | None = None,
) -> tuple[Dailies, list[str]]:
    """Record decisions made on what the reviewer saw: a shot whose `version` changed since is left alone.

    `seen` maps a shot to the dailies version the reviewer looked at (shots not in it are decided as they are now).
    Returns the dailies and one line per decision not recorded because the shot changed meanwhile.
    """
    stale: list[str] = []
    with changing_dailies(folder, storyboard) as dailies:
        at = now()
        for number, decision in decisions.items():
            review = dailies.shot(number)
            if number in seen and review.version != seen[number]:
                last = review.history[-1] if review.history else None
                since = f" by {last.by} at {last.at}" if last else ""
                stale.append(f"shot {number}: changed since it was shown (now T{review.take:02d} {review.status}{since}); "
                             f"{decision} not recorded, look again")
                continue
            review.decide(decision, at=at, by=by, note=note)
    return dailies, stale
