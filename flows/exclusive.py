"""One run of a flow per project at a time, and the newest one when several are due at once.

After downtime Prefect starts every scheduled run that went Late, all at once: three missed nights of render-pending
would render the same project three times side by side. A deployment-wide concurrency limit would also hold back the
other projects' nights, so the guard is per project: a run ends Cancelled ("duplicate of <run>"), having done nothing,
when a newer run of the same flow and project is already due (its expected start passed) and not cancelled (it will
run, runs, or already ran), or
when another run of the same flow and project is running. The first is read from the Prefect API; the second is a
non-blocking lock on a file in the project's .reelflow/ folder, held for the whole run, so two runs that start at the
same instant cannot both go on (the file names the run holding it).
"""

from __future__ import annotations

import fcntl
import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import ParamSpec, TypeVar

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterId,
    FlowRunFilter,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.context import FlowRunContext
from prefect.states import Cancelled, State

from reelflow.schemas.load import ProjectFolder, load_project

P = ParamSpec("P")
R = TypeVar("R")
# A newer run in one of these states stands for the night: it will run, runs, or already ran (a Late run that starts
# after the newest one finished is a duplicate too). Cancelled and cancelling ones stand for nothing.
STANDS = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED, StateType.COMPLETED,
          StateType.FAILED, StateType.CRASHED]
RUNS_READ = 200  # due runs of the flow read at once, newest first


def run_words(run: FlowRun) -> str:
    return f"{run.name} (flow run {run.id})"


def _order(run: FlowRun) -> tuple[datetime, str]:
    """Which of two runs is newer: the later expected start, then the greater id (never a tie)."""
    return run.expected_start_time or datetime.min.replace(tzinfo=UTC), str(run.id)


def _same_project(run: FlowRun, root: Path) -> bool:
    project = run.parameters.get("project")
    return isinstance(project, str) and Path(project).resolve() == root


def newer_due(me: FlowRun, root: Path) -> FlowRun | None:
    """The newest run of `me`'s flow for the project at `root` that is due and not cancelled (it will run, runs, or
    ran), if newer than `me`."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(id=FlowFilterId(any_=[me.flow_id])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=STANDS)),
                expected_start_time=FlowRunFilterExpectedStartTime(before_=datetime.now(UTC)),
            ),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=RUNS_READ, offset=0)
    newer = [run for run in runs if run.id != me.id and _same_project(run, root) and _order(run) > _order(me)]
    return max(newer, key=_order, default=None)


@contextmanager
def project_lock(folder: ProjectFolder, name: str, holder: str) -> Iterator[str | None]:
    """Hold the project's lock `name` (not waiting for it) while the block runs: yields None when held, else who
    holds it. The lock goes with the process that holds it, however that process ends."""
    folder.state_dir.mkdir(parents=True, exist_ok=True)
    with (folder.state_dir / f"{name}.lock").open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            yield lock.read().strip() or "a run that is starting"
            return
        lock.truncate(0)
        lock.write(holder)
        lock.flush()
        try:
            yield None
        finally:
            lock.truncate(0)


def one_run_per_project(fn: Callable[P, R]) -> Callable[P, R | State]:
    """For a flow function taking `project`: its run ends Cancelled, "duplicate of <run>", doing nothing, when a newer
    run of the same flow and project is due or another one is running (see the module's docstring)."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> R | State:
        context = FlowRunContext.get()
        if context is None or context.flow_run is None:  # not a flow run: nothing to be a duplicate of
            return fn(*args, **kwargs)
        me = context.flow_run
        folder = load_project(signature.bind(*args, **kwargs).arguments["project"])
        root = folder.root.resolve()
        if (newer := newer_due(me, root)) is not None:
            return _duplicate(run_words(newer))
        with project_lock(folder, context.flow.name, run_words(me)) as holder:
            if holder is not None:
                return _duplicate(holder)
            return fn(*args, **kwargs)

    return guarded


def _duplicate(of: str) -> State:
    message = f"duplicate of {of}"
    get_run_logger().info("%s: this run does nothing", message)
    return Cancelled(message=message)
