"""The project's git checkout: the episodes a range of commits changed, and bringing the checkout to a commit."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

from reelflow.schemas.errors import ContractError
from reelflow.state.checkout import OlderHead, bring_to, changed_episodes, moving, reading, resolve_commit
from reelflow.state.generated import write_generated

from conftest import run_cli
from projects import storyboard, write_project

REGISTRY = {"characters": {"ANA": [{"base_model": "flux-2", "path": "ana.safetensors"}],
                           "BO": [{"base_model": "flux-2", "path": "bo.safetensors"}]}}

GIT_CONFIG = ("-c", "user.email=t@t", "-c", "user.name=t", "-c", "commit.gpgsign=false")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *GIT_CONFIG, *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def commit(repo: Path, message: str = "change") -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def write_board(root: Path, episode: int, cast: tuple[str, ...], prompt: str = "a frame") -> None:
    """A one-shot storyboard whose shot has `cast` in it."""
    board = storyboard(episode, only=(4,))
    board["shots"][0] |= {"characters_in_shot": list(cast), "first_frame_prompt": prompt}
    (root / "storyboards" / f"storyboard_ep_{episode:03d}.json").write_text(json.dumps(board))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository whose project lives in `show/`: episode 1 has Ana, 2 has Bo, 3 nobody; a LoRA registry."""
    top = tmp_path / "repo"
    root = write_project(top / "show", storyboard(1, only=(3,)))
    write_board(root, 1, ("ANA",))
    write_board(root, 2, ("BO",))
    write_board(root, 3, ())
    (root / "visual").mkdir()
    (root / "visual" / "lora_registry.json").write_text(json.dumps(REGISTRY))
    (top / ".gitignore").write_text("storyboards/assets/\n.reelflow/\n")
    git(top, "init", "-q", "-b", "main")
    commit(top, "first")
    return root


def test_a_storyboard_edit_changes_its_episode_only(repo: Path) -> None:
    base = resolve_commit(repo, "HEAD")
    write_board(repo, 2, ("BO",), prompt="Bo at the hatch")
    head = commit(repo.parent)
    assert changed_episodes(repo, base, head) == [2]
    assert changed_episodes(repo, head, head) == []


@pytest.mark.parametrize("name", ["breakdown.json", "project.json"])
def test_breakdown_or_project_changes_every_episode_at_head(repo: Path, name: str) -> None:
    base = resolve_commit(repo, "HEAD")
    path = repo / name
    path.write_text(json.dumps(json.loads(path.read_text()) | {"notes": "changed"}))
    (repo / "storyboards" / "storyboard_ep_003.json").unlink()
    head = commit(repo.parent)
    assert changed_episodes(repo, base, head) == [1, 2]


def test_a_registry_change_names_the_episodes_of_that_character(repo: Path) -> None:
    base = resolve_commit(repo, "HEAD")
    registry = json.loads(json.dumps(REGISTRY))
    registry["characters"]["BO"][0]["scale"] = 0.8
    (repo / "visual" / "lora_registry.json").write_text(json.dumps(registry, indent=2))
    head = commit(repo.parent)
    assert changed_episodes(repo, base, head) == [2]

    (repo / "visual" / "lora_registry.json").write_text(json.dumps(registry))  # same entries, other layout
    assert changed_episodes(repo, head, commit(repo.parent)) == []

    (repo / "visual" / "lora_registry.json").write_text("{not json")
    assert changed_episodes(repo, head, commit(repo.parent)) == [1, 2, 3], "an unreadable registry may touch anyone"


def test_a_keystone_names_the_episodes_with_that_character(repo: Path) -> None:
    base = resolve_commit(repo, "HEAD")
    keystones = repo / "visual" / "lora_candidates" / "ANA" / "keystones"
    keystones.mkdir(parents=True)
    (keystones / "front.png").write_bytes(b"png")
    assert changed_episodes(repo, base, commit(repo.parent)) == [1]


def test_a_deleted_storyboard_is_no_episode_to_render(repo: Path) -> None:
    base = resolve_commit(repo, "HEAD")
    (repo / "storyboards" / "storyboard_ep_002.json").unlink()
    write_board(repo, 4, ("ANA",))
    assert changed_episodes(repo, base, commit(repo.parent)) == [4]


def test_generated_files_and_files_outside_the_project_change_nothing(repo: Path) -> None:
    base = resolve_commit(repo, "HEAD")
    (repo / "storyboards" / "dailies_ep_001.json").write_text("{}")
    (repo / "previz" / "ep_001").mkdir(parents=True)
    (repo / "previz" / "ep_001" / "previz_review.html").write_text("<html>")
    (repo / "storyboards" / "notes.md").write_text("ideas")
    (repo.parent / "project.json").write_text("{}")  # the repository's own, not the project's
    assert changed_episodes(repo, base, commit(repo.parent)) == []


def test_the_project_may_be_the_repository_root(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj", storyboard(1, only=(3,)))
    git(root, "init", "-q")
    base = commit(root)
    write_board(root, 1, ("ANA",))
    head = commit(root)
    assert changed_episodes(root, base, head) == [1]
    assert changed_episodes(root, base[:8], "HEAD") == [1]


def test_errors_are_one_line_naming_the_project_and_the_commit(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(ContractError) as raised:
        changed_episodes(repo, "HEAD", "0123abc")
    assert str(raised.value) == f"{repo}: commit '0123abc' is not in the git repository at {repo.parent}"
    plain = write_project(tmp_path / "plain")
    with pytest.raises(ContractError, match=rf"^{plain}: not in a git repository \(fatal: not a git repository") as raised:
        changed_episodes(plain, "HEAD~1", "HEAD")
    assert "\n" not in str(raised.value)


def test_bring_to_fast_forwards_the_branch(repo: Path) -> None:
    top = repo.parent
    first = resolve_commit(repo, "HEAD")
    write_board(repo, 1, ("ANA",), prompt="later")
    later = commit(top)
    git(top, "reset", "-q", "--hard", first)
    (repo / "storyboards" / "dailies_ep_001.json").write_text("{}")  # generated: does not count
    (repo / "storyboards" / "assets" / "ep_001").mkdir(parents=True)
    (repo / "storyboards" / "assets" / "ep_001" / "ep_001.mp4").write_bytes(b"mp4")
    assert bring_to(repo, later[:10]) == later
    assert git(top, "symbolic-ref", "--short", "HEAD") == "main"
    assert resolve_commit(repo, "main") == later
    assert bring_to(repo, later) == later, "already there"


def test_bring_to_never_moves_the_checkout_backwards(repo: Path) -> None:
    top = repo.parent
    first = resolve_commit(repo, "HEAD")
    write_board(repo, 1, ("ANA",), prompt="later")
    later = commit(top)
    with pytest.raises(OlderHead) as raised:
        bring_to(repo, first)
    assert str(raised.value) == (f"{repo}: the checkout is at {later[:12]}, which already holds {first[:12]}: "
                                 "the checkout never moves backwards")
    assert resolve_commit(repo, "HEAD") == later and git(top, "symbolic-ref", "--short", "HEAD") == "main"


def test_bring_to_detaches_where_the_history_was_rewritten(repo: Path) -> None:
    top = repo.parent
    first = resolve_commit(repo, "HEAD")
    write_board(repo, 1, ("ANA",), prompt="later")
    later = commit(top)
    git(top, "checkout", "-q", "-b", "rewritten", first)
    write_board(repo, 1, ("ANA",), prompt="rewritten")
    rewritten = commit(top)
    git(top, "checkout", "-q", "main")
    assert bring_to(repo, rewritten) == rewritten
    assert resolve_commit(repo, "main") == later, "the branch is never moved back"
    assert git(top, "rev-parse", "--abbrev-ref", "HEAD") == "HEAD", "detached"


def test_bring_to_fetches_a_commit_only_origin_has(repo: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo.parent), str(clone)], check=True)
    write_board(repo, 3, ("BO",), prompt="pushed")
    pushed = commit(repo.parent)
    assert bring_to(clone / "show", pushed) == pushed
    assert json.loads((clone / "show" / "storyboards" / "storyboard_ep_003.json").read_text())["shots"][0][
        "first_frame_prompt"] == "pushed"


@pytest.mark.parametrize("path", ["storyboards/storyboard_ep_002.json", "breakdown.json",
                                  "visual/lora_candidates/BO/keystones/new.png"])
def test_bring_to_refuses_uncommitted_inputs(repo: Path, path: str) -> None:
    top = repo.parent
    first = resolve_commit(repo, "HEAD")
    later = commit(top)
    git(top, "checkout", "-q", first)
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text("edited")
    with pytest.raises(ContractError) as raised:
        bring_to(repo, later)
    assert str(raised.value) == (f"{repo}: uncommitted changes to {path}; commit or discard them before "
                                 f"checking out {later[:12]}")
    assert resolve_commit(repo, "HEAD") == first, "nothing moved"


def test_files_reelflow_wrote_among_the_inputs_do_not_stop_a_move_and_stay(repo: Path) -> None:
    top = repo.parent
    first = resolve_commit(repo, "HEAD")
    write_board(repo, 2, ("BO",), prompt="pushed")
    later = commit(top)
    git(top, "reset", "-q", "--hard", first)
    candidate = repo / "visual" / "lora_candidates" / "BO" / "BO_c001.png"
    registry = json.dumps(REGISTRY | {"trained": "here"}).encode()
    write_generated(repo, candidate, b"a candidate")  # untracked
    write_generated(repo, repo / "visual" / "lora_registry.json", registry)  # tracked, rewritten by training
    assert bring_to(repo, later) == later
    assert candidate.read_bytes() == b"a candidate"
    assert (repo / "visual" / "lora_registry.json").read_bytes() == registry


@pytest.mark.parametrize(("written", "changed"), [
    ("visual/lora_candidates/BO/BO_c001.png", "visual/lora_candidates/BO/BO_c001.png"),  # retouched
    ("visual/lora_registry.json", "visual/lora_registry.json"),  # edited by hand
    ("visual/lora_candidates/BO/BO_c001.png", "visual/lora_candidates/BO/keystones/BO_c001.png"),  # made a keystone
])
def test_a_persons_change_to_what_reelflow_wrote_is_an_input(repo: Path, written: str, changed: str) -> None:
    top = repo.parent
    first = resolve_commit(repo, "HEAD")
    later = commit(top)
    git(top, "reset", "-q", "--hard", first)
    write_generated(repo, repo / written, b"made by reelflow")
    (repo / changed).parent.mkdir(parents=True, exist_ok=True)
    (repo / changed).write_bytes(b"changed by a person" if changed == written else b"made by reelflow")
    with pytest.raises(ContractError) as raised:
        bring_to(repo, later)
    assert str(raised.value) == (f"{repo}: uncommitted changes to {changed}; commit or discard them before "
                                 f"checking out {later[:12]}")
    assert resolve_commit(repo, "HEAD") == first, "nothing moved"


@pytest.mark.parametrize(("path", "state"), [("visual/lora_candidates/BO/BO_c001.png", "is untracked"),
                                             ("visual/lora_registry.json", "has uncommitted changes")])
def test_a_commit_that_would_overwrite_a_file_here_is_refused_in_one_line_naming_it(
        repo: Path, path: str, state: str) -> None:
    top = repo.parent
    first = resolve_commit(repo, "HEAD")
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_bytes(b"committed on another machine")
    later = commit(top)
    git(top, "reset", "-q", "--hard", first)
    write_generated(repo, repo / path, b"made here")  # reelflow's own, yet git would not move over it
    with pytest.raises(ContractError) as raised:
        bring_to(repo, later)
    assert str(raised.value) == (f"{repo}: {later[:12]} changes {path}, which {state} here; commit, move or discard "
                                 f"it before checking out {later[:12]}")
    assert resolve_commit(repo, "HEAD") == first and (repo / path).read_bytes() == b"made here", "nothing moved"


def test_a_file_removed_here_that_the_commit_changes_is_put_back(repo: Path) -> None:
    top = repo.parent
    review = repo / "previz" / "ep_001" / "previz_review.html"
    review.parent.mkdir(parents=True)
    review.write_text("<html>first")
    first = commit(top)
    review.write_text("<html>later")
    later = commit(top)
    git(top, "reset", "-q", "--hard", first)
    review.unlink()
    assert bring_to(repo, later) == later
    assert review.read_text() == "<html>later"


def test_the_changed_episodes_command(repo: Path) -> None:
    base = resolve_commit(repo, "HEAD")
    write_board(repo, 3, ("BO",), prompt="Bo returns")
    head = commit(repo.parent)
    assert run_cli("changed-episodes", str(repo), base[:7], "HEAD").stdout == "episodes: 3\n"
    assert run_cli("changed-episodes", str(repo), "HEAD", "HEAD").stdout == "episodes: none\n"
    as_json = run_cli("changed-episodes", str(repo), base, "main", "--json")
    assert as_json.code == 0 and as_json.json() == {"episodes": [3], "base": base, "head": head}
    unknown = run_cli("changed-episodes", str(repo), "v9", "HEAD")
    assert (unknown.code, unknown.stdout) == (2, "")
    assert unknown.stderr == f"error: {repo}: commit 'v9' is not in the git repository at {repo.parent}\n"


def test_the_checkout_moves_only_while_no_render_reads_its_inputs(repo: Path) -> None:
    """Renders share the checkout (one reader never waits for another); a move waits until every reader is done."""
    top = repo.parent
    first = resolve_commit(repo, "HEAD")
    write_board(repo, 1, ("ANA",), prompt="later")
    later = commit(top)
    git(top, "reset", "-q", "--hard", first)
    moved, second_reader = threading.Event(), threading.Event()

    def move() -> None:
        with moving(repo):
            bring_to(repo, later)
        moved.set()

    def read() -> None:
        with reading(repo):
            second_reader.set()

    with reading(repo):
        reader = threading.Thread(target=read)
        reader.start()
        assert second_reader.wait(5), "a second render waited for the first"
        mover = threading.Thread(target=move)
        mover.start()
        time.sleep(0.5)
        assert not moved.is_set() and resolve_commit(repo, "HEAD") == first, "moved under a render"
    mover.join(10)
    assert moved.is_set() and resolve_commit(repo, "HEAD") == later
