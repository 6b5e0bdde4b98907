import pytest

from reelflow.schemas.env import env_number, scaled_sizes
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
