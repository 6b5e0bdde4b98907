from pathlib import Path

import pytest

from reelflow.schemas.env import blob_url, checkout_here, env_number, scaled_sizes, state_url
from reelflow.schemas.errors import ContractError


def test_env_number(monkeypatch: pytest.MonkeyPatch) -> None:
    assert env_number("REELFLOW_TEST_N", 2.5) == 2.5
    monkeypatch.setenv("REELFLOW_TEST_N", " 0 ")
    assert env_number("REELFLOW_TEST_N", 2.5) == 0
    with pytest.raises(ContractError, match="^REELFLOW_TEST_N: ' 0 ' must be more than 0$".replace(" ' 0 '", " '0'")):
        env_number("REELFLOW_TEST_N", 2.5, positive=True)
    for bad in ("-1", "nan", "soon"):
        monkeypatch.setenv("REELFLOW_TEST_N", bad)
        with pytest.raises(ContractError, match="^REELFLOW_TEST_N: "):
            env_number("REELFLOW_TEST_N", 1.0)


def test_frame_scale_shrinks_sizes_for_benchmarks_only(monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = {"9:16": (768, 1344), "16:9": (1344, 768)}
    monkeypatch.delenv("REELFLOW_FRAME_SCALE", raising=False)
    assert scaled_sizes(sizes) == sizes, "unset: the product's sizes"
    monkeypatch.setenv("REELFLOW_FRAME_SCALE", "0.125")
    assert scaled_sizes(sizes) == {"9:16": (96, 168), "16:9": (168, 96)}
    monkeypatch.setenv("REELFLOW_FRAME_SCALE", "0.001")
    assert scaled_sizes(sizes) == {"9:16": (16, 16), "16:9": (16, 16)}, "even, and at least 16 px"
    monkeypatch.setenv("REELFLOW_FRAME_SCALE", "2")
    with pytest.raises(ContractError, match="^REELFLOW_FRAME_SCALE: 2.0 must be at most 1$"):
        scaled_sizes(sizes)


def test_a_flow_run_names_the_studios_path_and_each_host_reads_its_own_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = tmp_path / "worker" / "studio" / "leviathan"
    here.mkdir(parents=True)
    monkeypatch.setenv("REELFLOW_CHECKOUTS", f"/srv/studio={tmp_path}/worker/studio, /srv=/elsewhere")
    assert checkout_here("/srv/studio/leviathan") == str(here)  # the longest match wins
    assert checkout_here("/srv/other/x") == "/elsewhere/other/x"
    assert checkout_here("/srv/studiox") == "/elsewhere/studiox"  # whole folder names only
    assert checkout_here(str(here)) == str(here)  # a path this host has is as given
    monkeypatch.delenv("REELFLOW_CHECKOUTS")
    assert checkout_here("/srv/studio/leviathan") == "/srv/studio/leviathan"


def test_state_and_blob_urls_come_from_the_environment_before_project_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "project.json").write_text('{"state_url": "postgresql://db.studio/reelflow", "blob_url": "s3://b/p"}')
    monkeypatch.delenv("REELFLOW_STATE_URL", raising=False)
    monkeypatch.delenv("REELFLOW_BLOB_URL", raising=False)
    assert (state_url(tmp_path), blob_url(tmp_path)) == ("postgresql://db.studio/reelflow", "s3://b/p")
    monkeypatch.setenv("REELFLOW_STATE_URL", "postgresql://other/db")
    assert state_url(tmp_path) == "postgresql://other/db"
    monkeypatch.setenv("REELFLOW_BLOB_URL", "https://not-s3")
    with pytest.raises(ContractError, match=r"^REELFLOW_BLOB_URL: 'https://not-s3' must be s3://bucket"):
        blob_url(tmp_path)
