"""A render's progress while it runs: a live table on a terminal, else one line per finished shot.

Fed by the stage events of this process (state/progress.py). A shot is cached when everything it did was found
in the cache, done when anything was made now, failed when it stopped; its cost is the events' cost, the local
provider's named shadow (nothing charged).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from rich.console import Console
from rich.live import Live
from rich.table import Table

from reelflow.schemas.load import ProjectFolder
from reelflow.schemas.storyboard import Storyboard
from reelflow.state.dailies import read_dailies

if TYPE_CHECKING:
    from reelflow.state.progress import StageEvent

ShotState = Literal["waiting", "running", "done", "cached", "held", "failed"]
STATE_STYLE: dict[ShotState, str] = {"waiting": "dim", "running": "yellow", "done": "green", "cached": "blue",
                                     "held": "magenta", "failed": "red"}
FINISHED: tuple[ShotState, ...] = ("done", "cached", "held", "failed")


def cost_words(charged_usd: float, shadow_usd: float) -> str:
    """A cost in a few words: what was charged, and the local provider's shadow cost named as such."""
    if shadow_usd and charged_usd:
        return f"${charged_usd:.3f} + ${shadow_usd:.3f} shadow"
    if shadow_usd:
        return f"${shadow_usd:.3f} shadow"
    return f"${charged_usd:.3f}"


def shots_to_render(folder: ProjectFolder, storyboard: Storyboard, numbers: list[int] | None, retakes: bool) -> dict[int, str]:
    """The shots a render makes now, with their approaches: approved shots are kept; with `retakes` only retakes."""
    selected = numbers or [shot.shot for shot in storyboard.shots]
    takes, _ = read_dailies(folder, storyboard).takes_to_render(selected, retakes_only=retakes)
    return {number: storyboard.shot(number).generation_approach.value for number in sorted(takes)}


@dataclass
class ShotProgress:
    """One shot as its events tell it: current stage and state, calls and cost so far, and its times."""

    shot: int
    approach: str
    stage: str = ""
    state: ShotState = "waiting"
    made: bool = False
    calls: int = 0
    charged_usd: float = 0.0
    shadow_usd: float = 0.0
    started: float | None = None
    seconds: float | None = None
    reason: str = ""

    @property
    def name(self) -> str:
        return f"S{self.shot:02d}"

    def apply(self, event: StageEvent, now: float) -> None:
        """Take one event: a stage starts or ends, or the shot finishes (done or cached) or fails."""
        if self.started is None:
            self.started = now
        if event.stage != "shot":
            self.stage = event.stage
        if event.shadow:
            self.shadow_usd += event.cost_usd
        else:
            self.charged_usd += event.cost_usd
        self.calls += event.provider_calls
        if event.status == "failed":
            self.state, self.reason = "failed", event.detail
        elif event.stage == "shot":
            self.state = "held" if event.status == "held" else "done" if self.made else "cached"
        else:
            self.made = self.made or event.status == "done"
            self.state = "running"
        if self.state in FINISHED:
            self.seconds = now - self.started

    def took(self, now: float) -> str:
        """Its time so far, or in all once finished; nothing while it waits."""
        if self.started is None:
            return ""
        return f"{self.seconds if self.seconds is not None else now - self.started:.1f} s"


class ProgressView:
    """Shots finished of all, each shot's stage and state, elapsed time and cost so far, fed by stage events.

    `on_finished` gets one plain line per shot as it finishes (for output that is not a terminal).
    """

    def __init__(self, shots: dict[int, str], on_finished: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.shots = {number: ShotProgress(number, approach) for number, approach in shots.items()}
        self.on_finished = on_finished
        self.clock = clock
        self.started = clock()
        self.lock = threading.Lock()

    def __call__(self, event: StageEvent) -> None:
        with self.lock:
            shot = self.shots.get(event.shot)
            if shot is None or shot.state in FINISHED:
                return
            shot.apply(event, self.clock())
            if shot.state in FINISHED and self.on_finished is not None:
                self.on_finished(self.finished_line(shot))

    @property
    def finished(self) -> int:
        return sum(shot.state in FINISHED for shot in self.shots.values())

    @property
    def failed(self) -> int:
        return sum(shot.state == "failed" for shot in self.shots.values())

    def cost(self) -> str:
        """The cost of every event so far."""
        shots = self.shots.values()
        return cost_words(sum(shot.charged_usd for shot in shots), sum(shot.shadow_usd for shot in shots))

    def headline(self) -> str:
        """Shots finished of all, elapsed time and cost so far, in one line."""
        failed = f" ({self.failed} failed)" if self.failed else ""
        return (f"{self.finished}/{len(self.shots)} shots finished{failed} · {self.clock() - self.started:.1f} s elapsed"
                f" · cost so far {self.cost()}")

    def finished_line(self, shot: ShotProgress) -> str:
        """One line for a shot that just finished, with the render's progress after it."""
        finished = {"done": "rendered", "cached": "cached", "held": "keyframes wait for review"}
        what = finished.get(shot.state, f"failed at {shot.stage}: {shot.reason}")
        calls = f"{shot.calls} call{'' if shot.calls == 1 else 's'}"
        return (f"shot {self.finished}/{len(self.shots)}: {shot.name} {what} "
                f"({calls}, {cost_words(shot.charged_usd, shot.shadow_usd)}) in {shot.took(self.clock())}"
                f" · {self.clock() - self.started:.1f} s elapsed · cost so far {self.cost()}")

    def table(self) -> Table:
        """The live table: the headline, then each shot's stage, state, calls, cost and time."""
        with self.lock:
            table = Table(title=f"render: {self.headline()}", title_justify="left", expand=False)
            for column in ("shot", "approach", "stage", "state", "calls", "cost", "time"):
                table.add_column(column)
            now = self.clock()
            for shot in self.shots.values():
                style = STATE_STYLE[shot.state]
                table.add_row(shot.name, shot.approach, shot.stage, f"[{style}]{shot.state}[/{style}]", str(shot.calls),
                              cost_words(shot.charged_usd, shot.shadow_usd), shot.took(now))
            return table


@contextmanager
def showing(shots: dict[int, str], console: Console) -> Iterator[None]:
    """The progress of these shots on `console` until the block ends: a live table on a terminal, else lines."""
    from reelflow.state.progress import subscribe

    terminal = console.is_terminal
    view = ProgressView(shots, None if terminal else lambda line: console.print(line, markup=False, highlight=False))
    unsubscribe = subscribe(view)
    try:
        if terminal:
            with Live(console=console, get_renderable=view.table, refresh_per_second=4, transient=True):
                yield
        else:
            yield
    finally:
        unsubscribe()
