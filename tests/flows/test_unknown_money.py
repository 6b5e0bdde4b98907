"""Money when the answer is unknown: renders against fakes that bill like the services, then lose the answer.

Each fake keeps its own bill (fal by each endpoint's rule, Gemini per image or by the tokens it reports); the
ledger must add up to it, to the cent, whatever was lost on the way back.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reelflow.state.ledger import Ledger

from conftest import render_killed_in_flight, run_cli
from fakes.fal import FakeFal
from fakes.gemini import FakeGemini
from projects import PROJECT, storyboard, write_project

pytestmark = pytest.mark.usefixtures("prefect_api")
FAL_ONLY = PROJECT | {"providers": {"default": "fal"}, "review": {"keyframes": "none"}}


def charged(root: Path) -> float:
    """What the project's ledger says was charged (shadow cost aside), pending and unknown rows at their price."""
    return Ledger.at(root / ".reelflow").spent(shadow=False)


def test_lost_submit_answers_are_counted_once_and_resubmitted_within_billed_retries(tmp_path: Path, fal: FakeFal) -> None:
    root = write_project(tmp_path / "proj", storyboard(only=(4,)), project=FAL_ONLY)
    fal.drop_new_bodies = 2  # the keyframe and the upscale: fal runs and bills both; their answers never arrive
    result = run_cli("render", str(root), "--episode", "1", "--json", env=fal.env())
    assert result.code == 0, result.stderr

    assert round(charged(root), 2) == round(fal.billed_usd, 2) and fal.billed_usd > 0
    assert result.json()["charged_usd"] == pytest.approx(fal.billed_usd)
    assert max(fal.submits_by_body.values()) <= 1 + 1, "no body past 1 + billed_retries submits"
    ledger = run_cli("ledger", str(root), "--json").json()
    assert len(ledger["unknown"]) == 2 and all(row["status"] == "unknown" for row in ledger["unknown"])
    assert ledger["spent_usd"] == pytest.approx(fal.billed_usd) and ledger["estimated_usd"] == pytest.approx(fal.billed_usd)
    assert set(ledger["by_shot"]) == {"ep001-S01"} and ledger["by_shot"]["ep001-S01"]["requests"] == 4


def test_gemini_answers_that_stall_past_the_timeout_are_counted_at_their_price(
    tmp_path: Path, gemini: FakeGemini
) -> None:
    project = PROJECT | {"providers": {"default": "local", "upscale": "gemini"}}
    root = write_project(tmp_path / "proj", storyboard(only=(3, 4)), project=project)  # two held frames, two upscales
    gemini.stall_s = 6.0
    gemini.stall_next(2)  # two bodies generated and billed, answered after the client gave up
    env = gemini.env() | {"REELFLOW_GEMINI_TIMEOUT_S": "3"}
    result = run_cli("render", str(root), "--episode", "1", "--json", env=env)
    assert result.code == 0, result.stdout

    report = result.json()
    assert report["charged_usd"] == pytest.approx(gemini.billed_usd) and gemini.billed_usd > 0
    assert round(charged(root), 2) == round(gemini.billed_usd, 2)
    assert max(gemini.billed_by_body.values()) <= 1 + 1, "no body past 1 + billed_retries submits"
    unknown = Ledger.at(root / ".reelflow").rows("status = 'unknown'")
    assert len(unknown) == 2 and all(row.provider == "gemini" for row in unknown)


def test_a_body_that_keeps_losing_its_answer_stops_at_billed_retries_across_runs(tmp_path: Path, fal: FakeFal) -> None:
    root = write_project(tmp_path / "proj", storyboard(only=(4,)), project=FAL_ONLY)
    fal.drop_submits = 10
    first = run_cli("render", str(root), "--episode", "1", "--json", env=fal.env())
    assert first.code == 1 and "unknown" in first.json()["failures"][0]["reason"]
    assert fal.total_submits() == 2, "1 + billed_retries"
    again = run_cli("render", str(root), "--episode", "1", "--json", env=fal.env())
    assert again.code == 1 and fal.total_submits() == 2, "tomorrow's run does not pay for it again"
    assert "--forget-billed-failures" in again.json()["failures"][0]["reason"]
    assert round(charged(root), 2) == round(fal.billed_usd, 2)

    forgiven = run_cli("ledger", str(root), "--forget-billed-failures", "--episode", "1", "--shot", "1")
    assert forgiven.code == 0 and "forgave 2" in forgiven.stderr
    rows = Ledger.at(root / ".reelflow").rows("status = 'unknown'")
    assert len(rows) == 2 and all(row.forgiven for row in rows), "allowed again; still money"
    assert round(charged(root), 2) == round(fal.billed_usd, 2)


def test_a_render_killed_in_flight_and_resumed_after_fal_forgot_its_results_counts_what_fal_billed(
    tmp_path: Path,
) -> None:
    with FakeFal(slow_s=3.0) as fal:
        root = write_project(tmp_path / "killed", storyboard(only=(3, 4)), project=FAL_ONLY)
        ledger = Ledger.at(root / ".reelflow")
        render_killed_in_flight(root, fal, 2)
        assert fal.total_submits() >= 2 and ledger.rows("status = 'pending'")

        fal.slow_s = 0.0
        fal.forget_results()  # they ran and billed; past fal's retention their results are gone
        result = run_cli("render", str(root), "--episode", "1", "--json", env=fal.env())
        assert result.code == 0, result.stderr
        assert round(ledger.spent(), 2) == round(fal.billed_usd, 2)
        assert len(ledger.rows("status = 'unknown'")) >= 2 and not ledger.rows("status IN ('pending', 'submitting')")
        assert max(fal.submits_by_body.values()) <= 2


def test_shadow_cost_never_refuses_a_paid_call(tmp_path: Path, fal: FakeFal) -> None:
    project = PROJECT | {"budget_usd": 0.05}
    root = write_project(tmp_path / "proj", storyboard(only=(4,)), project=project)
    local = run_cli("render", str(root), "--episode", "1", "--json")
    assert local.code == 0, local.stderr
    report = local.json()
    assert report["shadow_usd"] > 0.05 and report["charged_usd"] == 0.0
    assert report["budget"]["stopped"] is None and report["budget"]["spent_project_usd"] == 0.0
    assert "would have stopped" in report["budget"]["shadow_stop"]

    (root / "project.json").write_text((root / "project.json").read_text().replace(
        '"providers": {"default": "local"}', '"providers": {"default": "local", "keyframes": "fal"}'))
    paid = run_cli("render", str(root), "--episode", "1", "--json", env=fal.env())
    assert paid.code == 0, paid.stderr
    assert fal.total_submits() > 0 and paid.json()["budget"]["stopped"] is None
    assert paid.json()["charged_usd"] == pytest.approx(fal.billed_usd) and fal.billed_usd < 0.05


def test_an_account_the_service_limited_stops_every_later_call_of_the_run(tmp_path: Path, gemini: FakeGemini) -> None:
    project = PROJECT | {"providers": {"default": "local", "upscale": "gemini"}, "concurrency": {"gemini": 1}}
    root = write_project(tmp_path / "proj", storyboard(only=(3, 4)), project=project)
    gemini.finish_next("PUP_LIMITED_DISABLED", times=5)
    result = run_cli("render", str(root), "--episode", "1", "--json", env=gemini.env())
    assert result.code == 1
    failures = result.json()["failures"]
    assert [failure["stage"] for failure in failures] == ["upscale", "upscale"]
    assert sum("(not sent)" in failure["reason"] for failure in failures) == 1, failures
    assert len(gemini.calls) == 1, "one billed answer said the account is limited; nothing more was sent"
    assert round(charged(root), 2) == round(gemini.billed_usd, 2)
