"""A run's spending cap: paid calls reserve their price first and are refused past the cap."""

from __future__ import annotations

import threading

from reelflow.schemas.errors import ReelflowError


class BudgetExceeded(ReelflowError):
    """A paid call would take the run past its cap; nothing was submitted."""


class Budget:
    """What a run may spend (None: no cap) and what its paid calls have reserved so far."""

    def __init__(self, cap_usd: float | None) -> None:
        self.cap_usd = cap_usd
        self.spent_usd = 0.0
        self._lock = threading.Lock()

    def reserve(self, cost_usd: float) -> None:
        with self._lock:
            if self.cap_usd is not None and self.spent_usd + cost_usd > self.cap_usd + 1e-9:
                raise BudgetExceeded(
                    f"budget ${self.cap_usd:.2f} reached: ${self.spent_usd:.3f} spent, "
                    f"the next call needs ${cost_usd:.3f}; not submitted"
                )
            self.spent_usd += cost_usd

    def refund(self, cost_usd: float) -> None:
        """Give back a reservation whose call failed before it was billed."""
        with self._lock:
            self.spent_usd -= cost_usd


_budgets: dict[str, Budget] = {}
_guard = threading.Lock()


def open_budget(run: str, cap_usd: float | None) -> Budget:
    with _guard:
        budget = _budgets[run] = Budget(cap_usd)
    return budget


def budget_for(run: str) -> Budget:
    """The run's budget; a run that opened none has no cap."""
    with _guard:
        return _budgets.setdefault(run, Budget(None))


def close_budget(run: str) -> None:
    with _guard:
        _budgets.pop(run, None)
