"""project.json and breakdown.json: contract examples load; breaks name the file and field."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from reelflow.schemas import gemini_models
from reelflow.schemas.errors import ContractError
from reelflow.schemas.load import load_project
from reelflow.schemas.project import Project

from conftest import run_cli
from projects import BREAKDOWN, PROJECT, write_project


def test_contract_example_loads(tmp_path: Path) -> None:
    folder = load_project(write_project(tmp_path))
    assert folder.project.code == "TST"
    assert folder.project.production_size == (768, 1344)
    assert folder.project.stage("video").use == "local"
    assert folder.breakdown.character_ids == {"ANA", "BO"}


def test_stage_choice_with_fallback_and_default(tmp_path: Path) -> None:
    project = PROJECT | {
        "aspect_ratio": "16:9",
        "providers": {"default": "fal", "video": {"use": "fal", "fallback": "runpod"}, "qc": "gemini"},
        "studio_notes": "kept",
    }
    folder = load_project(write_project(tmp_path, project=project))
    assert folder.project.production_size == (1344, 768)
    assert (folder.project.stage("video").use, folder.project.stage("video").fallback) == ("fal", "runpod")
    assert folder.project.stage("keyframes").use == "fal"
    assert folder.project.stage("qc").use == "gemini"


@pytest.mark.parametrize(("change", "field"), [
    ({"code": "lev"}, "code"),
    ({"code": "L"}, "code"),
    ({"code": "LEVIATHAN"}, "code"),
    ({"aspect_ratio": "4:3"}, "aspect_ratio"),
    ({"fps": "16"}, "fps"),
    ({"fps": 0}, "fps"),
    ({"providers": {"default": "openai"}}, "providers"),
    ({"providers": {"sound": "local"}}, "providers"),
    ({"providers": {"video": {"fallback": "runpod"}}}, "providers.video"),
])
def test_project_breaks_name_file_and_field(tmp_path: Path, change: dict, field: str) -> None:
    with pytest.raises(ContractError) as raised:
        load_project(write_project(tmp_path, project=PROJECT | change))
    first_line = str(raised.value).splitlines()[0]
    assert first_line.startswith(f"project.json: {field}"), first_line


def test_project_missing_field(tmp_path: Path) -> None:
    project = {k: v for k, v in PROJECT.items() if k != "aspect_ratio"}
    with pytest.raises(ContractError, match=r"^project.json: aspect_ratio: field required"):
        load_project(write_project(tmp_path, project=project))


@pytest.mark.parametrize(("breakdown", "expected"), [
    (BREAKDOWN | {"characters": [{"id": "ana"}]}, "breakdown.json: characters[0].id"),
    (BREAKDOWN | {"characters": [{"id": "ENV"}]}, "breakdown.json: characters[0].id"),
    (BREAKDOWN | {"characters": [{"id": "ANA"}, {"id": "ANA"}]}, "breakdown.json: characters: id ANA appears twice"),
    ({"locations": []}, "breakdown.json: characters: field required"),
])
def test_breakdown_breaks(tmp_path: Path, breakdown: dict, expected: str) -> None:
    root = write_project(tmp_path)
    (root / "breakdown.json").write_text(json.dumps(breakdown))
    with pytest.raises(ContractError) as raised:
        load_project(root)
    assert str(raised.value).startswith(expected), str(raised.value)


def test_missing_project_file(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="project.json: file not found"):
        load_project(tmp_path)


@pytest.mark.parametrize(("stage", "use", "model", "replacement"), [
    ("upscale", "gemini", "gemini-2.5-flash-image", "gemini-3.1-flash-image"),
    ("candidates", "gemini", "gemini-3-pro-image-preview", "gemini-3-pro-image"),
    ("qc", "local", "gemini-2.5-flash-image", "gemini-3.1-flash-image"),  # a local shadow of a shut-down id too
])
def test_a_shut_down_gemini_id_is_one_line_naming_its_replacement(
    tmp_path: Path, stage: str, use: str, model: str, replacement: str
) -> None:
    project = PROJECT | {"providers": {"default": "local", stage: {"use": use, "model": model}}}
    with pytest.raises(ContractError) as raised:
        load_project(write_project(tmp_path, project=project))
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"project.json: providers.{stage}.model: {model} was shut down on 20"), message
    assert message.endswith(f"; use {replacement}"), message


def test_an_unknown_gemini_id_for_gemini_is_refused_and_current_ones_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = PROJECT | {"providers": {"upscale": {"use": "gemini", "model": "gemini-3.1-flash-imag"}}}
    with pytest.raises(ContractError, match=r"^project.json: providers.upscale.model: 'gemini-3.1-flash-imag' is not a Gemini"):
        load_project(write_project(tmp_path, project=project))
    current = {"upscale": {"use": "gemini", "model": "gemini-3.1-flash-image"},
               "qc": {"use": "gemini", "model": "gemini-2.5-flash"},  # retiring: shuts down on 2026-12-01
               "keyframes": {"use": "fal", "model": "fal-ai/flux-2/lora"}}
    monkeypatch.setattr(gemini_models, "today", lambda: date(2026, 11, 30))
    folder = load_project(write_project(tmp_path, project=PROJECT | {"providers": current}))
    assert folder.project.stage("qc").model == "gemini-2.5-flash"
    monkeypatch.setattr(gemini_models, "today", lambda: date(2026, 12, 1))
    with pytest.raises(ContractError, match=r"^project.json: providers.qc.model: gemini-2.5-flash was shut down on "
                                            r"2026-12-01; use gemini-3.5-flash-lite$"):
        load_project(write_project(tmp_path, project=PROJECT | {"providers": current}))


def test_the_nightly_schedule_defaults_to_two_in_the_morning_utc(tmp_path: Path) -> None:
    project = load_project(write_project(tmp_path)).project
    assert (project.timezone, project.nightly) == ("UTC", "0 2 * * *")
    chosen = load_project(write_project(tmp_path, project=PROJECT | {"timezone": "Europe/Paris",
                                                                     "nightly": "30 1 * * mon-fri"})).project
    assert (chosen.timezone, chosen.nightly) == ("Europe/Paris", "30 1 * * mon-fri")


NOT_A_ZONE = "is not an IANA time zone name, e.g. UTC or Europe/Paris"


@pytest.mark.parametrize(("change", "expected"), [
    ({"timezone": "Mars/Olympus"}, f"project.json: timezone: 'Mars/Olympus' {NOT_A_ZONE}"),
    ({"timezone": "utc"}, f"project.json: timezone: 'utc' {NOT_A_ZONE}"),
    ({"timezone": 2}, "project.json: timezone: 2: input should be a valid string"),
    ({"nightly": "0 2 * *"}, "project.json: nightly: '0 2 * *' is not a cron of 5 fields: "
                             "minute hour day-of-month month day-of-week"),
    ({"nightly": "0 24 * * *"}, "project.json: nightly: '0 24 * * *': hour '24' is not in 0-23"),
    ({"nightly": "0 2 * foo *"}, "project.json: nightly: '0 2 * foo *': month 'foo' is not in 1-12"),
    ({"nightly": "*/0 2 * * *"}, "project.json: nightly: '*/0 2 * * *': minute step in '*/0' must be 1 or more"),
    ({"nightly": "0 5-1 * * *"}, "project.json: nightly: '0 5-1 * * *': hour range '5-1' runs backwards"),
    ({"nightly": "0 2 L * *"}, "project.json: nightly: '0 2 L * *': day of month 'L' is not in 1-31"),
])
def test_a_bad_schedule_setting_is_one_line_naming_field_and_value(tmp_path: Path, change: dict, expected: str) -> None:
    with pytest.raises(ContractError) as raised:
        load_project(write_project(tmp_path, project=PROJECT | change))
    assert str(raised.value) == expected


@pytest.mark.parametrize("nightly", ["0 2 * * *", "*/15 0-5/2 1,15 jan-jun 7", "59 23 31 12 sun-sat", "0 2 * * 1-5"])
def test_every_schedule_project_json_takes_prefect_takes_too(nightly: str) -> None:
    from prefect.client.schemas.schedules import CronSchedule

    project = Project.model_validate(PROJECT | {"nightly": nightly, "timezone": "America/New_York"})
    assert CronSchedule(cron=project.nightly, timezone=project.timezone).cron == nightly


def test_validate_reports_a_bad_schedule_as_one_line(tmp_path: Path) -> None:
    root = write_project(tmp_path, project=PROJECT | {"timezone": "Europe/Pariss"})
    result = run_cli("validate", str(root))
    assert result.code == 2
    assert result.stderr == ("error: project.json: timezone: 'Europe/Pariss' is not an IANA time zone name, "
                             "e.g. UTC or Europe/Paris\n")
