"""Run reports by flow run id: kept here and in S3, so another machine's `reelflow report` reads them."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reelflow.cli.app import app
from reelflow.schemas.errors import ContractError
from reelflow.schemas.report import RenderReport, ShotCounts, ShotLine
from reelflow.state.reports import read_report, save_report

from projects import PROJECT, write_project
from s3_bucket import CODE, S3

RUN = uuid.uuid4()
REPORT = RenderReport(episode=1, output=None, manifest="storyboards/assets/ep_001/manifest.json", cut_skipped="no cut: test",
                      shots=ShotCounts(total=1, rendered=1, cached=0, failed=0), provider_calls=1, cost_usd=0.02,
                      lines=[ShotLine(shot=1, approach="standard_flf", status="rendered", provider_calls=1, cost_usd=0.02)])


def test_a_report_saved_on_one_host_is_read_on_another(s3: S3, tmp_path: Path) -> None:
    here, there = write_project(tmp_path / "here", project=PROJECT | {"code": CODE}), tmp_path / "there"
    data = REPORT.model_dump_json().encode()
    path = save_report(here / ".reelflow", RUN.hex, data)
    assert path == here / ".reelflow" / "reports" / f"{RUN}.json" and path.read_bytes() == data
    assert s3.body(s3.key(f"reports/{RUN}.json")) == data

    write_project(there, project=PROJECT | {"code": CODE})  # the same project checked out on another machine
    assert read_report(there / ".reelflow", str(RUN)) == data
    assert read_report(there / ".reelflow", str(uuid.uuid4())) is None
    with pytest.raises(ContractError, match="^run id 'latest' is not a flow run id"):
        read_report(there / ".reelflow", "latest")

    runner = CliRunner()
    shown = runner.invoke(app, ["report", str(there), str(RUN), "--json"])
    assert shown.exit_code == 0 and RenderReport.model_validate_json(shown.stdout) == REPORT
    text = runner.invoke(app, ["report", str(there), RUN.hex])
    assert text.exit_code == 0, text.output
    assert "cut: no cut: test" in text.stdout and "shots: 1 rendered, 0 cached, 0 kept, 0 failed" in text.stdout


def test_without_a_blob_url_reports_stay_here(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj")
    save_report(root / ".reelflow", str(RUN), b'{"episode": 1}')
    assert read_report(root / ".reelflow", RUN.hex) == b'{"episode": 1}'
    runner = CliRunner()
    unreadable = runner.invoke(app, ["report", str(root), str(RUN)])
    assert (unreadable.exit_code, unreadable.stderr) == (
        1, f"error: run {RUN}: its report is not one this reelflow can read (--json prints it)\n")
    assert json.loads(runner.invoke(app, ["report", str(root), str(RUN), "--json"]).stdout) == {"episode": 1}
    missing = runner.invoke(app, ["report", str(root), "0" * 32])
    assert (missing.exit_code, missing.stderr) == (2, f"error: run {'0' * 32}: no report (it is written when a render ends)\n")
