"""The project's git checkout: which episodes a range of commits changed, and bringing the checkout to a commit.

The project folder may be the repository's root or a folder inside it; every path git reports is taken relative
to the repository's top level and then to the project folder.
"""

from __future__ import annotations

import json
import os
import subprocess
from contextlib import AbstractContextManager
from pathlib import Path, PurePosixPath

from reelflow.schemas.errors import ContractError
from reelflow.schemas.load import STORYBOARD_FILE
from reelflow.state.generated import generated_unchanged
from reelflow.state.store import held, write_atomic

WHOLE_PROJECT = ("project.json", "breakdown.json")  # a change to either may change every episode
REGISTRY = "visual/lora_registry.json"
GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}  # a fetch never waits on a password prompt
CHECKOUT_LOCK = "checkout"  # moved alone, read together
RENDERED_HEAD = "rendered_head.json"  # in the project's state folder


class OlderHead(ContractError):
    """A commit older than the one the checkout is at: the checkout never moves backwards."""


class _Repo:
    """A project folder inside a git repository: its top level and the project's path relative to it."""

    def __init__(self, root: Path) -> None:
        self.root = root = Path(root)
        if not root.is_dir():
            raise ContractError(f"{root}: not a project folder")
        top = self._run("-C", str(root), "rev-parse", "--show-toplevel", why="not in a git repository")
        self.top = Path(top.strip())
        self.prefix = PurePosixPath(root.resolve().relative_to(self.top.resolve()).as_posix())

    def _run(self, *args: str, why: str) -> str:
        """Run git; a failure is one line naming the project, `why`, and git's first line of complaint."""
        try:
            done = subprocess.run(["git", *args], capture_output=True, text=True, env=os.environ | GIT_ENV)
        except FileNotFoundError:
            raise ContractError(f"{self.root}: git is not installed") from None
        if done.returncode != 0:
            said = next((line.strip() for line in done.stderr.splitlines() if line.strip()), f"exit {done.returncode}")
            raise ContractError(f"{self.root}: {why} ({said})")
        return done.stdout

    def git(self, *args: str, why: str) -> str:
        return self._run("-C", str(self.top), *args, why=why)

    def succeeds(self, *args: str) -> bool:
        done = subprocess.run(["git", "-C", str(self.top), *args], capture_output=True, env=os.environ | GIT_ENV)
        return done.returncode == 0

    def commit(self, rev: str) -> str | None:
        """The full sha `rev` names, or None when the repository has no such commit."""
        done = subprocess.run(["git", "-C", str(self.top), "rev-parse", "--verify", "--quiet", "--end-of-options",
                               f"{rev}^{{commit}}"], capture_output=True, text=True, env=os.environ | GIT_ENV)
        return done.stdout.strip() if done.returncode == 0 else None

    def resolve(self, rev: str) -> str:
        sha = self.commit(rev)
        if sha is None:
            raise ContractError(f"{self.root}: commit {rev!r} is not in the git repository at {self.top}")
        return sha

    def path(self, relative: str) -> str:
        """A project path as the repository names it."""
        return str(self.prefix / relative)

    def project_path(self, repo_path: str) -> PurePosixPath | None:
        """A repository path relative to the project folder; None when it lies outside it."""
        path = PurePosixPath(repo_path)
        return path.relative_to(self.prefix) if path.is_relative_to(self.prefix) else None

    def show(self, sha: str, relative: str) -> str | None:
        """A project file's text at a commit; None when the commit has no such file."""
        done = subprocess.run(["git", "-C", str(self.top), "show", f"{sha}:{self.path(relative)}"],
                              capture_output=True, env=os.environ | GIT_ENV)
        return done.stdout.decode("utf-8", "replace") if done.returncode == 0 else None


def resolve_commit(root: Path, rev: str) -> str:
    """The full sha that `rev` (a sha, branch or tag) names in the project's repository."""
    return _Repo(root).resolve(rev)


def is_ancestor(root: Path, older: str, newer: str) -> bool:
    """Whether commit `older` is `newer` or one of its ancestors (False when either is unknown)."""
    return _Repo(root).succeeds("merge-base", "--is-ancestor", older, newer)


def _episode(path: PurePosixPath) -> int | None:
    """The episode of a storyboard path (`storyboards/storyboard_ep_NNN.json`), else None."""
    if len(path.parts) != 2 or path.parts[0] != "storyboards":
        return None
    match = STORYBOARD_FILE.fullmatch(path.name)
    return int(match[1]) if match else None


def _storyboards(repo: _Repo, sha: str) -> dict[int, str]:
    """The storyboards a commit holds: episode → path relative to the project."""
    listed = repo.git("ls-tree", "-r", "-z", "--name-only", sha, "--", repo.path("storyboards"), why="cannot list storyboards")
    found = {}
    for name in filter(None, listed.split("\0")):
        relative = repo.project_path(name)
        episode = _episode(relative) if relative is not None else None
        if episode is not None:
            found[episode] = str(relative)
    return found


def _cast(repo: _Repo, sha: str, path: str) -> set[str] | None:
    """The characters in a storyboard's shots at a commit; None when it does not parse (so it may have anyone)."""
    try:
        shots = json.loads(repo.show(sha, path) or "")["shots"]
        return {char for shot in shots for char in shot.get("characters_in_shot", [])}
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def _registry_characters(repo: _Repo, base: str, head: str) -> set[str] | None:
    """The characters whose LoRA registry entries differ between two commits; None when either side does not parse."""
    sides = []
    for sha in (base, head):
        try:
            document = json.loads(repo.show(sha, REGISTRY) or "{}")
        except ValueError:
            return None
        characters = document.get("characters", {}) if isinstance(document, dict) else None
        if not isinstance(characters, dict):
            return None
        sides.append(characters)
    before, after = sides
    return {char for char in before.keys() | after.keys() if before.get(char) != after.get(char)}


def changed_episodes(root: Path, base: str, head: str) -> list[int]:
    """The episodes whose inputs changed between `base` and `head`, sorted; only episodes with a storyboard at `head`.

    A storyboard names its episode; project.json and breakdown.json name every episode; a LoRA registry change names
    the episodes with a shot of a character whose entries changed (every episode if the registry does not parse);
    a character's keystones (`visual/lora_candidates/<CHAR>/keystones/*`) name the episodes with that character.
    """
    repo = _Repo(root)
    base_sha, head_sha = repo.resolve(base), repo.resolve(head)
    diff = repo.git("diff", "--name-only", "--no-renames", "-z", base_sha, head_sha, "--", str(repo.prefix),
                    why=f"cannot compare {base} with {head}")
    at_head = _storyboards(repo, head_sha)
    episodes: set[int] = set()
    characters: set[str] = set()
    for name in filter(None, diff.split("\0")):
        path = repo.project_path(name)
        if path is None:
            continue
        parts = path.parts
        if str(path) in WHOLE_PROJECT:
            return sorted(at_head)
        if (episode := _episode(path)) is not None:
            episodes.add(episode)
        elif str(path) == REGISTRY:
            changed = _registry_characters(repo, base_sha, head_sha)
            if changed is None:
                return sorted(at_head)
            characters |= changed
        elif len(parts) >= 5 and parts[:2] == ("visual", "lora_candidates") and parts[3] == "keystones":
            characters.add(parts[2])
    if characters:
        for episode, path in at_head.items():
            cast = _cast(repo, head_sha, path)
            if cast is None or cast & characters:
                episodes.add(episode)
    return sorted(episodes & at_head.keys())


def is_input(path: PurePosixPath) -> bool:
    """Whether a project path is an input a render reads (storyboards, project, breakdown, visual/), not its output."""
    parts = path.parts
    if str(path) in WHOLE_PROJECT or (parts and parts[0] == "visual"):
        return True
    return len(parts) == 2 and parts[0] == "storyboards" and path.suffix == ".json" and not path.name.startswith("dailies_ep_")


def _uncommitted(repo: _Repo) -> dict[PurePosixPath, str]:
    """The project's files with uncommitted changes (untracked ones included), relative to the project, each with
    git's two-letter status (`??`: untracked; ` D`: removed from the working tree only)."""
    status = repo.git("status", "--porcelain=v1", "-z", "--no-renames", "--untracked-files=all", "--",
                      str(repo.prefix), why="cannot read the checkout's status")
    found = {}
    for entry in filter(None, status.split("\0")):
        path = repo.project_path(entry[3:])
        if path is not None:
            found[path] = entry[:2]
    return found


def _dirty_inputs(repo: _Repo) -> list[str]:
    """The project's inputs with uncommitted changes (untracked ones included), relative to the project.

    A file that still holds exactly what reelflow last wrote there (candidates, their manifest, training sets,
    weights, the LoRA registry: state/generated.py) is an output wherever it lies; a person's edit of it is not.
    """
    inputs = {str(path) for path in _uncommitted(repo) if is_input(path)}
    return sorted(inputs - generated_unchanged(repo.root, inputs))


def _refuse_overwrites(repo: _Repo, current: str | None, sha: str) -> None:
    """Refuse in one line, naming the file, a move git would refuse: `sha` changes a file that has uncommitted
    changes here, or adds one where an untracked file is (an output reelflow wrote included)."""
    if current is None:
        listed = repo.git("ls-tree", "-r", "-z", "--name-only", sha, "--", str(repo.prefix), why=f"cannot list {sha[:12]}")
    else:
        listed = repo.git("diff", "--name-only", "--no-renames", "-z", current, sha, "--", str(repo.prefix),
                          why=f"cannot compare {current[:12]} with {sha[:12]}")
    changed = {repo.project_path(name) for name in filter(None, listed.split("\0"))}
    # A file removed from the working tree only is one git puts back: nothing of a person's is lost.
    blocked = sorted((str(path), state) for path, state in _uncommitted(repo).items() if path in changed and state != " D")
    if blocked:
        path, state = blocked[0]
        what = "is untracked" if state == "??" else "has uncommitted changes"
        more = f" (and {len(blocked) - 1} more)" if len(blocked) > 1 else ""
        raise ContractError(f"{repo.root}: {sha[:12]} changes {path}, which {what} here{more}; commit, move or discard "
                            f"it before checking out {sha[:12]}")


def bring_to(root: Path, head: str) -> str:
    """Put the project's checkout at commit `head` (a sha; a name means what the repository has now) and return its sha.

    A commit the repository lacks is fetched from `origin` first (when there is one). A branch that `head` extends is
    fast-forwarded to it (`git merge --ff-only`); a commit the checkout already holds is refused (OlderHead): the
    checkout never moves backwards. A history that does not line up (a rewritten branch) is checked out detached at
    `head`, so no branch is ever moved backwards or rewritten. Uncommitted changes to inputs (storyboards,
    project.json, breakdown.json, visual/) are refused; generated files (assets, dailies, previz/, .reelflow/, and
    the files reelflow wrote under visual/ while they hold what it wrote) do not count.
    """
    repo = _Repo(root)
    sha = repo.commit(head)
    if sha is None and "origin" in repo.git("remote", why="cannot list remotes").split():
        repo.git("fetch", "--quiet", "origin", why=f"cannot fetch commit {head!r} from origin")
        sha = repo.commit(head)
    if sha is None:
        raise ContractError(f"{root}: commit {head!r} is not in the git repository at {repo.top}")
    dirty = _dirty_inputs(repo)
    if dirty:
        more = f" and {len(dirty) - 1} more" if len(dirty) > 1 else ""
        raise ContractError(f"{root}: uncommitted changes to {dirty[0]}{more}; commit or discard them before "
                            f"checking out {sha[:12]}")
    current = repo.commit("HEAD")
    if current == sha:
        return sha
    if current is not None and repo.succeeds("merge-base", "--is-ancestor", sha, current):
        raise OlderHead(f"{root}: the checkout is at {current[:12]}, which already holds {sha[:12]}: the checkout "
                        "never moves backwards")
    _refuse_overwrites(repo, current, sha)
    on_branch = repo.succeeds("symbolic-ref", "--quiet", "HEAD")
    if on_branch and current is not None and repo.succeeds("merge-base", "--is-ancestor", current, sha):
        repo.git("merge", "--ff-only", "--quiet", sha, why=f"cannot fast-forward to {sha[:12]}")
    else:
        repo.git("checkout", "--quiet", "--detach", sha, why=f"cannot check out {sha[:12]}")
    return repo.resolve("HEAD")


def moving(root: Path) -> AbstractContextManager[None]:
    """Hold the project's checkout alone, to move it: no render reads the project's inputs meanwhile."""
    return held(Path(root) / ".reelflow", CHECKOUT_LOCK)


def reading(root: Path) -> AbstractContextManager[None]:
    """Hold the project's checkout still while a render reads its inputs (shared with other renders)."""
    return held(Path(root) / ".reelflow", CHECKOUT_LOCK, shared=True)


def rendered_head(root: Path) -> str | None:
    """The last commit the studio rendered the project's changes at (None before the first)."""
    try:
        return str(json.loads((Path(root) / ".reelflow" / RENDERED_HEAD).read_text())["head"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def record_rendered(root: Path, head: str) -> None:
    """Remember that the project's changes up to `head` were rendered."""
    write_atomic(Path(root) / ".reelflow" / RENDERED_HEAD, json.dumps({"head": head}).encode())
