"""Money and limits hold across processes: billed failures counted, one budget and one provider limit for every
render of a project, and a state database that survives a process killed while writing to it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reelflow.schemas.pricing import load_prices
from reelflow.state.ledger import Ledger, LedgerRow

from checks import calls_in_flight
from conftest import REELFLOW, run_cli
from fakes.fal import FakeFal
from projects import PROJECT, storyboard, write_project

pytestmark = pytest.mark.usefixtures("prefect_api")
FAL_KEYFRAMES = PROJECT | {"providers": {"default": "local", "keyframes": "fal"}}
TWO_SHOTS = "2,4"  # a standard FLF shot and a static hold: 10 provider calls
KEYFRAME = (576, 1024)  # shot 4's single 9:16 keyframe, billed per megapixel
SMALL = {"REELFLOW_FRAME_SCALE": "0.25"}  # local renders whose pictures no assertion measures: a sixteenth the pixels


def ledger(root: Path) -> Ledger:
    return Ledger.at(root / ".reelflow")


@pytest.mark.parametrize("billed_retries", [0, 1, 2])
def test_a_billed_unusable_output_is_paid_for_at_most_1_plus_billed_retries_times(
    tmp_path: Path, fal: FakeFal, billed_retries: int
) -> None:
    root = write_project(tmp_path / "proj", project=FAL_KEYFRAMES | {"billed_retries": billed_retries})
    fal.corrupt_outputs = 100  # every output fal bills is truncated
    result = run_cli("render", str(root), "--episode", "1", "--shots", "4", "--json", env=fal.env())
    assert result.code == 1
    report = result.json()
    assert fal.total_submits() == 1 + billed_retries, "no blind retries of a billed request"
    assert [(f["shot"], f["stage"]) for f in report["failures"]] == [(4, "keyframes")]
    assert "does not decode" in report["failures"][0]["reason"]
    billed = fal.total_submits() * load_prices().cost("fal-ai/flux-2/lora", size=KEYFRAME)
    rows = ledger(root).rows()
    assert [row.status for row in rows] == ["failed"] * fal.total_submits()
    assert report["cost_usd"] == pytest.approx(billed) and ledger(root).spent() == pytest.approx(billed)
    assert report["budget"]["spent_run_usd"] == pytest.approx(billed)
    assert report["charged_usd"] == pytest.approx(billed) and report["shadow_usd"] == 0

    listed = run_cli("ledger", str(root), "--json")
    assert listed.code == 0, listed.stderr
    assert len(listed.json()["billed_failures"]) == fal.total_submits()
    assert listed.json()["by_provider"]["fal"] == {"requests": fal.total_submits(), "spent_usd": pytest.approx(billed)}


def test_a_billed_unusable_output_then_a_good_one_costs_both(tmp_path: Path, fal: FakeFal) -> None:
    root = write_project(tmp_path / "proj", project=FAL_KEYFRAMES)
    fal.corrupt_outputs = 1
    result = run_cli("render", str(root), "--episode", "1", "--shots", "4", "--json", env=fal.env())
    assert result.code == 0, result.stderr
    price = load_prices().cost("fal-ai/flux-2/lora", size=KEYFRAME)
    assert fal.total_submits() == 2
    fal_rows = ledger(root).rows("provider = 'fal'")
    assert [(row.status, row.cost_usd) for row in fal_rows] == [("failed", price), ("completed", price)]
    assert result.json()["cost_usd"] == pytest.approx(ledger(root).spent())


def _two_episodes(root: Path, project: dict) -> Path:
    """Episodes 1 and 2 of the same shots, each with seeds of its own (nothing one makes serves the other)."""
    write_project(root, project=project)
    second = storyboard(2)
    for shot in second["shots"]:
        shot.pop("seed", None)
    (root / "storyboards" / "storyboard_ep_002.json").write_text(json.dumps(second))
    return root


def _render(root: Path, episode: int, env: dict[str, str], shots: str = TWO_SHOTS) -> subprocess.Popen[str]:
    environment = os.environ | {"REELFLOW_RETRY_DELAY_S": "0.01", "PREFECT_LOGGING_TO_API_ENABLED": "false"} | env
    return subprocess.Popen(
        [str(REELFLOW), "render", str(root), "--episode", str(episode), "--shots", shots, "--json"],
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _finish(process: subprocess.Popen[str]) -> tuple[int, dict, str]:
    stdout, stderr = process.communicate(timeout=240)
    return process.returncode, json.loads(stdout), stderr


def test_two_processes_share_the_project_budget(tmp_path: Path) -> None:
    with FakeFal(slow_s=0.3) as fal:  # budgets count money: a paid provider, slow enough for the renders to overlap
        paid = PROJECT | {"providers": {"default": "fal"}, "review": {"keyframes": "none"}}
        # What TWO_SHOTS cost on fal: 3 keyframes at $0.021, 3 SeedVR upscales at $0.002, one 33-frame WAN clip $0.165
        # (shot 2's 2 s at 16 fps)
        one_episode = 0.234
        budget = round(1.5 * one_episode, 2)  # room for one episode alone, never for both
        root = _two_episodes(tmp_path / "proj", paid | {"budget_usd": budget})
        first, second = _render(root, 1, fal.env()), _render(root, 2, fal.env())
        results = [_finish(first), _finish(second)]
    assert ledger(root).spent() <= budget + 1e-9 and fal.billed_usd <= budget + 1e-9
    assert max(report["cost_usd"] for _, report, _ in results) == pytest.approx(one_episode)
    # However the two interleave (side by side, or one done before the other starts), not both can finish.
    stopped = [(report, stderr) for code, report, stderr in results if code != 0]
    assert stopped, "two episodes rendered on the budget of one and a half"
    for code, report, stderr in results:
        assert code in (0, 1), stderr
        assert report["budget"]["spent_project_usd"] <= budget + 1e-9
    for report, stderr in stopped:
        budget_lines = [line for line in stderr.splitlines() if line.startswith("error: budget:")]
        assert budget_lines == [f"error: {report['budget']['stopped']}"]
        assert f"the project's budget (budget_usd) ${budget:.2f} reached" in budget_lines[0]
    assert sum(report["cost_usd"] for _, report, _ in results) == pytest.approx(ledger(root).spent())


def _span(rows: list[LedgerRow]) -> float:
    return max(row.settled_at or 0.0 for row in rows) - min(row.submitted_at for row in rows)


def test_two_processes_share_the_provider_limit(tmp_path: Path) -> None:
    limited = PROJECT | {"concurrency": {"local": 2}}
    latency = {"REELFLOW_LOCAL_LATENCY": "1"} | SMALL
    held = "3,4"  # two held frames, three calls each, side by side: one render alone keeps both slots busy
    alone = _two_episodes(tmp_path / "alone", limited)
    code, _, stderr = _finish(_render(alone, 1, latency, held))
    assert code == 0, stderr
    alone_rows = ledger(alone).rows()

    together = _two_episodes(tmp_path / "together", limited)
    processes = [_render(together, 1, latency, held), _render(together, 2, latency, held)]
    for process in processes:
        code, _, stderr = _finish(process)
        assert code == 0, stderr
    rows = ledger(together).rows()
    assert len(rows) == 2 * len(alone_rows) == 12
    assert calls_in_flight(alone_rows) == 2 and calls_in_flight(rows) == 2, "never more than 2 calls in flight"
    busy = sum((row.settled_at or 0.0) - row.submitted_at for row in rows)
    assert _span(rows) >= 0.95 * busy / 2, "together, the two slots were the bottleneck"
    # One render alone leaves a slot idle at its tail (the last shot's chain), so a little under twice.
    assert 1.45 <= _span(rows) / _span(alone_rows) <= 2.4, "two renders take about twice as long as one"


WRITER = """
import sys, time
from pathlib import Path
from reelflow.state.ledger import Charge, Ledger
ledger = Ledger.at(Path(sys.argv[1]))
for n in range(10**9):
    ticket = ledger.ticket(f"hammer-{n}", "fal", Charge(run="hammer", price_usd=0.01))
    ticket.submitted("fal-ai/x", f"req-{n}")
    ticket.completed("fal-ai/x", f"req-{n}", 0.01)
    if n == 20:
        print("writing", flush=True)
"""


def test_a_process_killed_mid_write_leaves_the_project_renderable_and_nothing_paid_twice(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj")
    first = run_cli("render", str(root), "--episode", "1", "--shots", "4", "--json", env=SMALL)
    assert first.code == 0, first.stderr
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(root / ".reelflow")], stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
    time.sleep(0.2)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    hammered = ledger(root).rows("run = 'hammer'")
    assert len(hammered) > 20 and all(row.status in ("pending", "completed") for row in hammered)

    # One render after the kill: shot 4 comes from the cache (no call), and shot 3, new, is made.
    again = run_cli("render", str(root), "--episode", "1", "--shots", "3,4", "--json", env=SMALL)
    assert again.code == 0, again.stderr
    lines = {line["shot"]: line for line in again.json()["lines"]}
    assert (lines[4]["status"], lines[4]["provider_calls"], again.json()["shots"]["cached"]) == ("cached", 0, 1)
    assert again.json()["provider_calls"] == 3, "only shot 3 is made (keyframe, verdict, upscale): none of 4's again"
