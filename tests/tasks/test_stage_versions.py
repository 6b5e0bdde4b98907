"""Every cached operation's version is raised when the code its output depends on changes.

A cache key carries its stage's hand-set version, not the code that made the output, so editing that code
without raising the version serves stale cached results. STAGES maps each versioned operation to the
constant holding its version and to the code its output depends on beyond what its key already holds
(request fields, params, input hashes); stage_code.json records the version and a fingerprint of that code.

The rule: a stage's fingerprint covers the code that shapes its output, and nothing else. That is prompts and
parameters, media operations, the arguments each provider is sent (its wire), and what is done to what it returns
(decoded, resampled, written, read as a verdict). It is not the code that decides what is paid or how a call gets
through: the ledger, budgets, prices, retries, the queue's submit / poll / cancel, uploads and downloads, error
mapping, tasks/calls.py's call loop. Money and transport code then changes without a version raised, and so
without every cached output made again.

An entry is a whole file (`media/images.py`) or one definition in it (`providers/fal/provider.py::FalProvider.
_write_image`): a function, class or module-level constant by its dotted name, a nested function too
(`...::FalProvider.generate_image.finish`). A file whose code is all output code is listed whole, so what is
added to it later is covered; a file that mixes output and money or transport code lists its output functions
one by one, each group saying why. The fingerprint of an entry is sha256 over its normalised AST: comments,
docstrings, formatting and position in the file do not count, any code change does.

After a change, raise the version if outputs change, then re-record (`--record`; run it without to see what
differs from the record):

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
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RECORD = Path(__file__).with_name("stage_code.json")
RECORD_COMMAND = ".venv/bin/python tests/tasks/test_stage_versions.py --record"
# where versioned operations keep theirs
SCANNED = ("tasks/*.py", "providers/local/provider.py", "providers/fal/provider.py", "providers/comfyui/provider.py")
PART = "::"  # `path::Dotted.name`: one definition of a file

# What fal makes for a request (its number per endpoint, WIRE_VERSIONS): the arguments each endpoint is sent and how
# its result is read (endpoints.py, all of it request and result mapping; the wire schemas, whose defaults are sent),
# and what is done to what comes back. Not the queue (submit, poll, cancel, uploads, downloads), errors.py, prices, or
# the LoRA uploads.
FAL = (
    "providers/fal/endpoints.py",
    "schemas/wire/fal.py",
    # provider.py also calls the queue, checks and prices requests, and uploads inputs: only the closures that turn a
    # result into files, the image writer they share, and how a trainer's weight files are named
    *(f"providers/fal/provider.py::FalProvider.{method}.finish"
      for method in ("generate_image", "edit_image", "upscale_image", "first_last_video", "train_lora")),
    "providers/fal/provider.py::FalProvider._write_image",
    "providers/fal/provider.py::weight_name",
    "providers/fal/queue.py::verified_image",  # in the queue's module, but it decodes the pixels written (as RGB)
    "media/images.py",
)
# What Gemini makes: the request config built and the answer read (wire.py). provider.py also makes the ledgered
# call (_call, _read, _generate), prices and checks requests: only the prompts, the judge's answer schema and its
# verdict, each capability's request, and how an image is resampled and written (`_image`'s `write`; the config
# `_image` sends is wire.py's image_call). judge_image is listed whole: it builds the request and the verdict around
# its call.
GEMINI = (
    "providers/gemini/wire.py",
    *(f"providers/gemini/provider.py::{name}" for name in (
        "UPSCALE_BRIEF", "REFERENCES_BRIEF", "JUDGE_BRIEF", "PASS_SCORE", "Judgement", "_edit_text", "_judge_text",
        "_verdict_reasons",
        "GeminiProvider.generate_image", "GeminiProvider.edit_image", "GeminiProvider.upscale_image",
        "GeminiProvider.judge_image", "GeminiProvider._image.write",
    )),
    "media/images.py",
)
# What the local provider draws, judges, encodes and trains. provider.py also ledgers every call at its shadow cost
# (_ledgered, _call, shadow_cost): only what decides the output. Each capability is listed whole (it chooses what is
# drawn and hands it to _call); judge_image and train_lora hold their ledger context inline, so a change to how they
# are ledgered shows here too: if what they return is unchanged, re-record. Of the faults, only those that change
# what is drawn (off_model, off_location, stuck_video); the rest are transport.
LOCAL = (
    *(f"providers/local/provider.py::{name}" for name in (
        "SHARPEN", "_input_sha256", "LocalProvider.cache_params", "LocalProvider.request_key",
        "LocalProvider.generate_image", "LocalProvider.judge_image", "LocalProvider.upscale_image",
        "LocalProvider.edit_image", "LocalProvider.train_lora", "LocalProvider.first_last_video",
    )),
    "providers/local/draw.py", "providers/local/flf.py", "providers/local/judge.py", "providers/local/replay.py",
    "providers/local/train.py",
    *(f"providers/local/faults.py::{name}" for name in ("_uniform", "FaultSchedule.off_model",
                                                         "FaultSchedule.off_location", "FaultSchedule.stuck_video")),
    "media/images.py", "media/encode.py", "media/ffmpeg.py", "media/hashing.py",
    # a caption band's share of the height, named in the PNGs it draws and kept by its upscale (a push holds it still)
    "media/motion.py::OVERLAY_KEY", "media/motion.py::overlay_rows",
)
# What a ComfyUI graph makes: the graphs and their model files, and how an output is read and written. provider.py
# also checks graphs, runs them on a server or an endpoint and prices them: only the graph a request becomes, the LoRA
# file names, and the output's reading and writing.
COMFYUI = (
    "providers/comfyui/graphs.py", "providers/comfyui/models.py",
    *(f"providers/comfyui/provider.py::{name}" for name in (
        "ROLES", "lora_sha256", "lora_file", "ComfyUIProvider.graph", "ComfyUIProvider._write_image",
        "ComfyUIProvider.first_last_video.finish", "ComfyUIProvider.generate_image", "ComfyUIProvider.edit_image",
        "ComfyUIProvider.upscale_image",
    )),
    "media/images.py",
)
# tasks/calls.py is the call loop (ledger, budgets, retries, fallbacks): only _invoke, which writes a judge's verdict
# and a trainer's result as the output file.
INVOKE = "tasks/calls.py::_invoke"
# Money and transport code, and files that mix it with output code: never fingerprinted whole.
NEVER_WHOLE = (
    "tasks/calls.py", "state/ledger.py", "state/budget.py", "state/limits.py", "tasks/retry.py",
    "providers/fal/queue.py", "providers/fal/errors.py", "providers/fal/provider.py", "providers/fal/loras.py",
    "providers/gemini/errors.py", "providers/gemini/provider.py", "providers/local/provider.py",
    "providers/comfyui/provider.py", "providers/comfyui/client.py", "providers/comfyui/hosts.py",
    "providers/runpod/pods.py", "providers/runpod/serverless.py", "providers/runpod/volume.py", "tasks/gpu.py",
    "providers/local/faults.py", "providers/local/latency.py", "providers/sizes.py", "schemas/pricing.py",
    "schemas/requests.py",
)
# What output code listed by part uses from its own file (a function, a constant, a method of its class) is listed
# too, or named here as shaping no output: request refusals (a refused request makes nothing), the ledgered call and
# prices, scratch folders and atomic writes (the same bytes land, or none), versions and names (in the keys),
# Gemini's `_image`, whose `write` is listed and whose call config is wire.py's image_call, and ComfyUI's `_run`
# (a graph queued on a server or an endpoint: the graph and the output's reading are listed).
NOT_OUTPUT: dict[str, frozenset[str]] = {
    "providers/fal/provider.py": frozenset({"_staged"}),
    "providers/gemini/provider.py": frozenset({"_check_size", "_check_references", "MAX_REFERENCES", "_call", "_image"}),
    "providers/comfyui/provider.py": frozenset({"_run", "DEFAULT_MODELS"}),
    "providers/local/provider.py": frozenset({
        "_check_size", "_call", "_ledgered", "shadow_cost", "_written", "NAME", "LOCAL_VERSION", "EDIT_VERSION",
    }),
}


@dataclass(frozen=True)
class Stage:
    """Where a cached operation's version lives, and the code its output depends on (files, or definitions in them)."""

    module: str
    constant: str
    sources: tuple[str, ...]

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
    "keyframes": Stage("reelflow.tasks.keyframes", "VERSION", ("tasks/keyframes.py", *GEMINI)),
    "previz": Stage("reelflow.tasks.previz", "VERSION", ("tasks/previz.py", *GEMINI)),
    "upscale": Stage("reelflow.tasks.upscale", "VERSION", ("tasks/upscale.py", *GEMINI, "media/probe.py")),
    "video": Stage("reelflow.tasks.video", "VERSION", ("tasks/video.py",)),
    # What fal makes for a request: raise the endpoint's number in WIRE_VERSIONS (only its outputs are made again).
    "fal": Stage("reelflow.providers.fal.provider", "WIRE_VERSIONS", FAL),
    # Gate 2: the verdict JSON is written by tasks/calls.py's _invoke from schemas/requests.Verdict.
    "qc": Stage(
        "reelflow.tasks.gates", "JUDGE_VERSION", ("tasks/gates.py", INVOKE, "schemas/requests.py::Verdict", *GEMINI),
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
    # The last decoded frame of a segment, where the next consecutive segment of a long shot starts.
    "last-frame": Stage(
        "reelflow.tasks.video", "LAST_FRAME_VERSION", ("tasks/video.py", "media/concat.py", "media/ffmpeg.py", "media/probe.py"),
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
    # What ComfyUI graphs make, for every stage they serve.
    "comfyui": Stage("reelflow.providers.comfyui.provider", "GRAPH_VERSION", COMFYUI),
    # What the local provider draws, judges and encodes, for every stage it serves.
    "local": Stage("reelflow.providers.local.provider", "LOCAL_VERSION", LOCAL),
    # The local provider's edits (character candidates) have their own number, so they can change without the renders.
    "local-edit": Stage(
        "reelflow.providers.local.provider", "EDIT_VERSION",
        ("providers/local/provider.py::LocalProvider.edit_image", "providers/local/draw.py", "media/images.py",
         "schemas/requests.py::EditRequest.output_size"),
    ),
    # Character LoRAs: candidates' calls (their prompts are in the keys; Gemini's edits below, fal's by endpoint),
    # the training zip, the trainer's result.
    "candidates": Stage(
        "reelflow.tasks.candidates", "VERSION",
        ("tasks/candidates.py", INVOKE, "schemas/requests.py::EditRequest.output_size", *GEMINI),
    ),
    "dataset": Stage("reelflow.tasks.training", "DATASET_VERSION", ("tasks/training.py", "media/images.py")),
    "training": Stage(
        "reelflow.tasks.training", "VERSION", ("tasks/training.py", INVOKE, "schemas/requests.py::TrainedLora", *FAL),
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


def _names(statement: ast.stmt) -> list[str]:
    """What a statement defines: a function's or class's name, or the names an assignment binds."""
    if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [statement.name]
    if isinstance(statement, ast.Assign):
        return [target.id for target in statement.targets if isinstance(target, ast.Name)]
    if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
        return [statement.target.id]
    return []


def definition(tree: ast.Module, name: str) -> ast.stmt:
    """The statement a dotted name defines in a module (`CONSTANT`, `function`, `Class.method`, `method.nested`),
    each part looked up in the body of the one before; the last definition of a name is the one Python keeps."""
    node: ast.AST = tree
    for part in name.split("."):
        found = [statement for statement in getattr(node, "body", []) if part in _names(statement)]
        if not found:
            raise LookupError(f"{name}: {part} is not defined there")
        node = found[-1]
    assert isinstance(node, ast.stmt)
    return node


def parsed(source: str) -> ast.Module:
    """A module's code, docstrings dropped."""
    tree = ast.parse(source)
    _drop_docstrings(tree)
    return tree


def normalised(source: str, name: str | None = None) -> str:
    """The code of a module, or of one definition in it, as text: without docstrings, positions or comments."""
    tree = parsed(source)
    return _dump(tree if name is None else definition(tree, name))


def source_digest(source: str, name: str | None = None) -> str:
    """sha256 of a module's normalised code, or of one definition's."""
    return hashlib.sha256(normalised(source, name).encode()).hexdigest()


@cache
def _source(path: str) -> str:
    return (ROOT / path).read_text(encoding="utf-8")


def source_digests(stage: Stage, edited: dict[str, str] | None = None) -> dict[str, str]:
    """The digest of every entry the stage depends on (a file, or `file::name`), by entry; `edited` gives some
    files' text in place of the tree's."""
    digests = {}
    for entry in sorted(set(stage.sources)):
        path, _, name = entry.partition(PART)
        digests[entry] = source_digest((edited or {}).get(path) or _source(path), name or None)
    return digests


def code_fingerprint(digests: dict[str, str]) -> str:
    """One sha256 over the entries and their digests."""
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
        digests = source_digests(stage)
        entries[operation] = {"version": version_of(stage), "code": code_fingerprint(digests), "sources": digests}
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
    digests = source_digests(stage)
    if code_fingerprint(digests) == entry["code"]:
        return
    was = entry.get("sources", {})
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
    assert not missing, f"add to STAGES in {Path(__file__).name}, with the code each output depends on: {', '.join(missing)}"
    unknown = sorted(f"{module}.{constant}" for module, constant in table - scanned_versions())
    assert not unknown, f"STAGES names constants not found in {', '.join(SCANNED)}: {', '.join(unknown)}"
    assert len(table) == len(STAGES), "two operations share one version constant"


def test_each_stage_lists_existing_code_and_its_own_module() -> None:
    for operation, stage in STAGES.items():
        paths = {entry.partition(PART)[0] for entry in stage.sources}
        missing = sorted(path for path in paths if not (ROOT / path).is_file())
        assert not missing, f"{operation}: no such files: {', '.join(missing)}"
        for entry in stage.sources:
            path, _, name = entry.partition(PART)
            if name:
                try:
                    definition(parsed(_source(path)), name)
                except LookupError as error:
                    pytest.fail(f"{operation}: {entry}: {error} (moved or renamed? update STAGES)", pytrace=False)
        assert stage.path in paths, f"{operation}: {stage.path} holds {stage.constant} but none of its code is listed"


def test_money_and_transport_code_is_never_fingerprinted_whole() -> None:
    """(e) A file that holds the ledger, prices, retries or the queue is listed by its output functions only."""
    for operation, stage in STAGES.items():
        whole = sorted(set(stage.sources) & set(NEVER_WHOLE))
        assert not whole, f"{operation}: list only the output code of {', '.join(whole)} (`path::name`), not the file"


def _parts() -> dict[str, set[str]]:
    """The definitions listed by name, by file."""
    parts: dict[str, set[str]] = {}
    for stage in STAGES.values():
        for entry in stage.sources:
            path, _, name = entry.partition(PART)
            if name:
                parts.setdefault(path, set()).add(name)
    return parts


def _functions(body: list[ast.stmt], prefix: str = "") -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function in `body` by dotted name: module functions, methods, and the functions nested in them."""
    found = []
    for statement in body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
            found.append((prefix + statement.name, statement))
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found += _functions(statement.body, f"{prefix}{statement.name}.")
    return found


def _with_a_statement(source: str, function: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    """`source` with one more statement at the top of the function's body: a code change inside it alone."""
    lines = source.splitlines(keepends=True)
    first = function.body[0]
    lines.insert(first.lineno - 1, " " * first.col_offset + "_changed = True\n")
    return "".join(lines)


def test_a_transport_change_is_ignored_and_an_output_change_is_seen() -> None:
    """(f) In a file listed by part, a change to code no stage lists (the queue's submit, the ledgered call, a price)
    moves no fingerprint; a change to a listed function moves its own."""
    for path, names in sorted(_parts().items()):
        source = _source(path)
        entries = {f"{path}{PART}{name}" for name in names}
        stage = Stage("", "", tuple(entries))
        before = source_digests(stage)
        tried = 0
        for name, function in _functions(ast.parse(source).body):
            if function.body[0].lineno == function.lineno:
                continue  # a one-line function: no room for a statement of its own
            after = source_digests(stage, {path: _with_a_statement(source, function)})
            listed = name in names or any(name.startswith(f"{part}.") for part in names)
            if listed:
                changed = {entry for entry in entries if after[entry] != before[entry]}
                assert changed, f"{path}: a change inside {name} moved no fingerprint"
            else:
                tried += 1
                assert after == before, f"{path}: a change to {name}, listed by no stage, moved a fingerprint"
        assert tried, f"{path}: listed by part, yet every function in it is listed: list the file whole"


def _used(node: ast.stmt, defined: set[str], methods: set[str]) -> set[str]:
    """The names `node` uses from its own file: module-level definitions, and `self.method` of its class."""
    names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id in defined}
    calls = {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
             and n.value.id in ("self", "cls") and n.attr in methods}
    return names | calls


def test_what_listed_code_uses_from_its_file_is_listed_too() -> None:
    """(g) A helper that listed output code calls from its own file is listed, or named in NOT_OUTPUT: otherwise a
    change to it would change outputs unseen."""
    for path, names in sorted(_parts().items()):
        tree = parsed(_source(path))
        defined = {name for statement in tree.body for name in _names(statement)}
        for name in sorted(names):
            head = name.split(".", 1)[0]
            owner = definition(tree, head)
            methods = {statement.name for statement in getattr(owner, "body", [])
                       if isinstance(owner, ast.ClassDef) and isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef)}
            used = _used(definition(tree, name), defined, methods)
            qualified = {n if n in defined else f"{head}.{n}" for n in used}
            covered = {n for n in qualified if n in names or any(n.startswith(f"{part}.") for part in names)}
            allowed = NOT_OUTPUT.get(path, frozenset())
            unlisted = sorted(qualified - covered - allowed - {f"{head}.{n}" for n in allowed} - {name})
            assert not unlisted, (f"{path}::{name} uses {', '.join(unlisted)} from its file: list it in STAGES, or in "
                                  f"NOT_OUTPUT if it shapes no output")


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


def test_a_definition_is_fingerprinted_alone() -> None:
    """A part's digest moves with its own code only: not with another function's, nor with where it sits."""
    submit = "def submit(self, x):\n        return self.queue.post(x)\n"
    finish = "def finish(result):\n            return result.resize((2, 2))\n"
    source = f"class Provider:\n    {submit}\n    def make(self, x):\n        {finish}        return self.submit(x)\n"
    base = source_digest(source, "Provider.make.finish")
    assert source_digest(source.replace("post(x)", "post(x, retries=3)"), "Provider.make.finish") == base
    assert source_digest(source.replace("return self.submit(x)", "return self.submit(x + 1)"), "Provider.make.finish") == base
    assert source_digest(source.replace("(2, 2)", "(4, 4)"), "Provider.make.finish") != base
    moved = source.replace(f"    {submit}\n", "") + f"\n    {submit}"
    assert source_digest(moved, "Provider.make.finish") == base
    with pytest.raises(LookupError):
        source_digest(source, "Provider.write")


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
        sources = [(entry or {}).get("sources", {}) for entry in (old, new)]
        for source in sorted(sources[0].keys() | sources[1].keys()):
            if sources[0].get(source) != sources[1].get(source):
                print(f"  changed: {source}")
    return 1 if differs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
