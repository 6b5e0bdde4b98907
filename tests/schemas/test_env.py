import pytest

from reelflow.schemas.env import env_number
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
