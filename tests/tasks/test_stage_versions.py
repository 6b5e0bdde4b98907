"""Every cached operation's version is raised when the code its output depends on changes.

A cache key carries its stage's hand-set version, not the code that made the output, so editing that code
without raising the version serves stale cached results. STAGES maps each versioned operation to the
constant holding its version and to the source files its output depends on beyond what its key already
holds (request fields, params, input hashes); stage_code.json records the version and a fingerprint of
those files. The fingerprint is sha256 over each file's normalised AST: comments, docstrings and formatting
do not count, any code change does. After a change, raise the version if outputs change, then re-record:

    .venv/bin/python tests/tasks/test_stage_versions.py --record
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RECORD = Path(__file__).with_name("stage_code.json")
RECORD_COMMAND = ".venv/bin/python tests/tasks/test_stage_versions.py --record"
SCANNED = ("tasks/*.py", "providers/local/provider.py", "providers/fal/provider.py")  # where versioned operations keep theirs

# What serves each capability besides the local provider (which has its own version): the wire translation,
# post-processing and content-rejection rules of fal and Gemini shape their outputs without entering the key.
FAL = ("providers/fal/endpoints.py", "providers/fal/provider.py", "providers/fal/queue.py", "providers/fal/errors.py")
GEMINI = ("providers/gemini/provider.py", "providers/gemini/wire.py", "providers/sizes.py")


@dataclass(frozen=True)
class Stage:
    """Where a cached operation's version lives, and the source files its output depends on."""

    module: str
    constant: str
    files: tuple[str, ...]

    @property
    def name(self) -> str:
        """The version constant as `module.CONSTANT`."""
        return f"{self.module}.{self.constant}"

    @property
    def path(self) -> str:
        """The repo-relative file that holds the constant."""
        return self.module.removeprefix("reelflow.").replace(".", "/") + ".py"


STAGES: dict[str, Stage] = {
    # Provider calls: Gemini code below; fal's wire is versioned per endpoint (fal below); the local provider's
    # own drawing is under LOCAL_VERSION.
    "keyframes": Stage("reelflow.tasks.keyframes", "VERSION", ("tasks/keyframes.py", *GEMINI, "media/images.py")),
    "previz": Stage("reelflow.tasks.previz", "VERSION", ("tasks/previz.py", *GEMINI, "media/images.py")),
    "upscale": Stage("reelflow.tasks.upscale", "VERSION", ("tasks/upscale.py", *GEMINI, "media/images.py", "media/probe.py")),
    "video": Stage("reelflow.tasks.video", "VERSION", ("tasks/video.py",)),
    # What fal makes for a request: raise the endpoint's number in WIRE_VERSIONS (only its outputs are made again).
    "fal": Stage("reelflow.providers.fal.provider", "WIRE_VERSIONS", (*FAL, "schemas/wire/fal.py", "media/images.py")),
    # Gate 2: the verdict JSON is written by tasks/calls.py from schemas/requests.Verdict.
    "qc": Stage(
        "reelflow.tasks.gates", "JUDGE_VERSION",
        ("tasks/gates.py", "tasks/calls.py", "schemas/requests.py", *GEMINI, "media/images.py"),
    ),
    # Pure media operations.
    "split": Stage("reelflow.tasks.keyframes", "SPLIT_VERSION", ("tasks/keyframes.py", "media/images.py")),
    "gate1": Stage(
        "reelflow.tasks.gates", "GATE1_VERSION",
        ("tasks/gates.py", "media/qc.py", "schemas/qc.py", "media/images.py", "tasks/keyframes.py"),
    ),
    "motion": Stage(
        "reelflow.tasks.video", "MOTION_VERSION",
        ("tasks/video.py", "media/motion.py", "media/encode.py", "media/ffmpeg.py", "media/images.py"),
    ),
    "clip": Stage(
        "reelflow.tasks.clip", "VERSION",
        ("tasks/clip.py", "media/concat.py", "media/ffmpeg.py", "media/motion.py", "media/probe.py"),
    ),
    "clip-qc": Stage(
        "reelflow.tasks.clip_qc", "VERSION",
        ("tasks/clip_qc.py", "media/qc.py", "media/motion.py", "media/probe.py", "media/ffmpeg.py", "schemas/qc.py"),
    ),
    "cut": Stage("reelflow.tasks.cut", "VERSION", ("tasks/cut.py", "media/concat.py", "media/ffmpeg.py", "media/probe.py")),
    # What the local provider draws, judges and encodes, for every stage it serves.
    "local": Stage(
        "reelflow.providers.local.provider", "LOCAL_VERSION",
        (
            "providers/local/provider.py", "providers/local/draw.py", "providers/local/flf.py", "providers/local/judge.py",
            "providers/local/faults.py", "providers/local/train.py", "media/images.py", "media/encode.py",
            "media/ffmpeg.py", "media/hashing.py",
        ),
    ),
    # The local provider's edits (character candidates) have their own number, so they can change without the renders.
    "local-edit": Stage(
        "reelflow.providers.local.provider", "EDIT_VERSION",
        ("providers/local/provider.py", "providers/local/draw.py", "media/images.py"),
    ),
    # Character LoRAs: candidates' calls (their prompts are in the keys), the training zip, the trainer's result.
    "candidates": Stage("reelflow.tasks.candidates", "VERSION", ("tasks/candidates.py", "tasks/calls.py")),
    "dataset": Stage("reelflow.tasks.training", "DATASET_VERSION", ("tasks/training.py", "media/images.py")),
    "training": Stage(
        "reelflow.tasks.training", "VERSION",
        ("tasks/training.py", "tasks/calls.py", "schemas/requests.py", *FAL, "schemas/wire/fal.py"),
    ),
}


def _drop_docstrings(tree: ast.AST) -> None:
    """Remove every bare string statement (module, class and function docstrings, attribute notes): they do nothing."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            node.body = [  # type: ignore[attr-defined]
                statement for statement in body
                if not (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
                        and isinstance(statement.value.value, str))
            ]


def _dump(node: object) -> str:
    """`ast.dump(node, annotate_fields=True, include_attributes=False)` without empty fields.

    Fields that are None or [] are left out (as Python 3.13's dump does) so the text is the same on every Python
    from 3.11: newer versions add empty fields such as `type_params` to the same code.
    """
    if isinstance(node, ast.AST):
        fields = ((field, getattr(node, field, None)) for field in node._fields)
        inner = ", ".join(f"{field}={_dump(value)}" for field, value in fields if value is not None and value != [])
        return f"{type(node).__name__}({inner})"
    if isinstance(node, list):
        return f"[{', '.join(_dump(item) for item in node)}]"
    return repr(node)


def normalised(source: str) -> str:
    """The code of a module as text: parsed, docstrings dropped, dumped without positions or comments."""
    tree = ast.parse(source)
    _drop_docstrings(tree)
    return _dump(tree)


def source_digest(source: str) -> str:
    """sha256 of a module's normalised code."""
    return hashlib.sha256(normalised(source).encode()).hexdigest()


def file_digests(stage: Stage) -> dict[str, str]:
    """The digest of every file the stage depends on, by repo-relative path."""
    return {path: source_digest((ROOT / path).read_text(encoding="utf-8")) for path in sorted(set(stage.files))}


def code_fingerprint(digests: dict[str, str]) -> str:
    """One sha256 over the files' paths and digests."""
    return hashlib.sha256("".join(f"{path}\0{digests[path]}\n" for path in sorted(digests)).encode()).hexdigest()


def version_of(stage: Stage) -> int | dict[str, int]:
    """The stage's version as the code sets it (fal's: a number per endpoint)."""
    value = getattr(importlib.import_module(stage.module), stage.constant)
    assert isinstance(value, int) or (isinstance(value, dict) and all(isinstance(n, int) for n in value.values())), (
        f"{stage.name} is {value!r}, not a version")
    return value


def current() -> dict[str, dict[str, Any]]:
    """What stage_code.json should hold for the tree as it is."""
    entries = {}
    for operation, stage in STAGES.items():
        digests = file_digests(stage)
        entries[operation] = {"version": version_of(stage), "code": code_fingerprint(digests), "files": digests}
    return entries


def recorded() -> dict[str, dict[str, Any]]:
    """stage_code.json as committed."""
    return json.loads(RECORD.read_text(encoding="utf-8"))


def write_record() -> None:
    """Rewrite stage_code.json from the tree."""
    RECORD.write_text(json.dumps(current(), sort_keys=True, indent=2) + "\n", encoding="utf-8")


def scanned_versions() -> set[tuple[str, str]]:
    """(module, constant) of every module-level `*VERSION*` constant where versioned operations keep theirs."""
    found = set()
    for pattern in SCANNED:
        for path in sorted(ROOT.glob(pattern)):
            module = "reelflow." + path.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
            for statement in ast.parse(path.read_text(encoding="utf-8")).body:
                targets = statement.targets if isinstance(statement, ast.Assign) else (
                    [statement.target] if isinstance(statement, ast.AnnAssign) else []
                )
                found |= {(module, t.id) for t in targets if isinstance(t, ast.Name) and "VERSION" in t.id}
    return found


@pytest.fixture(scope="module")
def record() -> dict[str, dict[str, Any]]:
    return recorded()


@pytest.mark.parametrize("operation", sorted(STAGES))
def test_code_change_raises_the_version(operation: str, record: dict[str, dict[str, Any]]) -> None:
    """(a) The output's code changed while its version did not: cached results would be stale."""
    stage = STAGES[operation]
    entry = record.get(operation)
    version = version_of(stage)
    if entry is None or entry["version"] != version:
        return  # test_record_matches_the_versions says what to do
    digests = file_digests(stage)
    if code_fingerprint(digests) == entry["code"]:
        return
    was = entry.get("files", {})
    changed = sorted(path for path in digests.keys() | was.keys() if digests.get(path) != was.get(path)) or sorted(digests)
    pytest.fail(
        f"{operation}: its code changed ({', '.join(changed)}) but {stage.name} is still {version}: "
        f"raise it if outputs change, then run `{RECORD_COMMAND}`",
        pytrace=False,
    )


@pytest.mark.parametrize("operation", sorted(STAGES))
def test_record_matches_the_versions(operation: str, record: dict[str, dict[str, Any]]) -> None:
    """(b) stage_code.json holds every operation at the version the code sets."""
    stage = STAGES[operation]
    version = version_of(stage)
    if operation not in record:
        pytest.fail(f"{operation}: not in {RECORD.name}: run `{RECORD_COMMAND}`", pytrace=False)
    if record[operation]["version"] != version:
        pytest.fail(
            f"{operation}: {stage.name} is {version} but {RECORD.name} records {record[operation]['version']}: "
            f"run `{RECORD_COMMAND}` so the record matches the tree",
            pytrace=False,
        )


def test_record_has_no_stale_operations(record: dict[str, dict[str, Any]]) -> None:
    stale = sorted(record.keys() - STAGES.keys())
    assert not stale, f"{RECORD.name} records operations no longer in STAGES ({', '.join(stale)}): run `{RECORD_COMMAND}`"


def test_every_version_constant_is_in_the_table() -> None:
    """(c) A new versioned stage cannot be forgotten: every `*VERSION*` constant scanned has an entry."""
    table = {(stage.module, stage.constant) for stage in STAGES.values()}
    missing = sorted(f"{module}.{constant}" for module, constant in scanned_versions() - table)
    assert not missing, f"add to STAGES in {Path(__file__).name}, with the files each output depends on: {', '.join(missing)}"
    unknown = sorted(f"{module}.{constant}" for module, constant in table - scanned_versions())
    assert not unknown, f"STAGES names constants not found in {', '.join(SCANNED)}: {', '.join(unknown)}"
    assert len(table) == len(STAGES), "two operations share one version constant"


def test_each_stage_lists_existing_files_and_its_own_module() -> None:
    for operation, stage in STAGES.items():
        missing = [path for path in stage.files if not (ROOT / path).is_file()]
        assert not missing, f"{operation}: no such files: {', '.join(missing)}"
        assert stage.path in stage.files, f"{operation}: {stage.path} holds {stage.constant} but is not among its files"


def _replace(source: str, replacements: list[tuple[ast.expr | ast.stmt, str]]) -> str:
    """`source` with the text of each node replaced (AST offsets are in UTF-8 bytes)."""
    data = source.encode()
    starts = [0]
    for line in data.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    spans = []
    for node, text in replacements:
        assert node.end_lineno is not None and node.end_col_offset is not None
        spans.append((starts[node.lineno - 1] + node.col_offset, starts[node.end_lineno - 1] + node.end_col_offset, text))
    for start, end, text in sorted(spans, reverse=True):
        data = data[:start] + text.encode() + data[end:]
    return data.decode()


def _docstring(node: ast.Module | ast.FunctionDef) -> ast.expr:
    first = node.body[0]
    assert isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)
    return first.value


def test_a_code_change_changes_the_fingerprint() -> None:
    """(d) One threshold changed in Gate 1's code is seen; comments, docstrings and blank lines are not."""
    source = (ROOT / "media/qc.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    base = source_digest(source)

    number = next(
        node.value for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and type(node.value.value) in (int, float)
    )
    assert isinstance(number.value, int | float)
    assert source_digest(_replace(source, [(number, repr(number.value + 1))])) != base
    compare = next(node for node in ast.walk(tree) if isinstance(node, ast.Compare))
    assert source_digest(_replace(source, [(compare, f"not ({ast.unparse(compare)})")])) != base

    function = next(node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and ast.get_docstring(node))
    documented = _replace(source, [
        (_docstring(tree), '"""Another module docstring,\n\nover several lines."""'),
        (_docstring(function), '"""Reworded."""'),
    ])
    inside = documented.replace("\n\n\ndef ", "\n\n\n# a comment\n\n\ndef ", 1)
    commented = f"# a comment at the top\n{inside}\n# at the end\n"
    assert commented.count("# a comment") == 2 and ast.get_docstring(ast.parse(commented)) != ast.get_docstring(tree)
    assert source_digest(commented) == base


def test_normalising_ignores_comments_docstrings_and_layout() -> None:
    before = 'def f(x):\n    """Doc."""\n    return x + 1  # one\n'
    after = '"""Module."""\n\n\n# two\ndef f( x ):\n    """Other doc,\n    two lines."""\n    return (x\n            + 1)\n'
    assert source_digest(before) == source_digest(after)
    assert source_digest(before) != source_digest(before.replace("+ 1", "+ 2"))
    assert source_digest(before) != source_digest(before.replace("x + 1", "1 + x"))


def main(argv: list[str]) -> int:
    """`--record` rewrites stage_code.json from the tree; without it, say what differs from the record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true", help=f"rewrite {RECORD.name} from the tree")
    if parser.parse_args(argv).record:
        write_record()
        print(f"wrote {RECORD.relative_to(ROOT)}")
        return 0
    now, was = current(), recorded() if RECORD.exists() else {}
    differs = 0
    for operation in sorted(now.keys() | was.keys()):
        new, old = now.get(operation), was.get(operation)
        if new == old:
            continue
        differs += 1
        said = [entry and f"version {entry['version']}, code {entry['code'][:12]}" for entry in (old, new)]
        print(f"{operation}: recorded {said[0] or 'nothing'}, now {said[1] or 'not in STAGES'}")
    return 1 if differs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
