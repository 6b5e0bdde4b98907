"""Ctrl-C of a render stops its spend, as a cancel from the Prefect UI does.

The render runs in this process, so Ctrl-C cannot kill it first as a worker would. The first Ctrl-C starts a thread
that stops the run from sending anything more, runs the flow's own `on_cancellation` hooks (its open provider requests
cancelled and settled, flows/cancel.py; its pods given back), marks the flow run Cancelled and ends the command with
130, without waiting for the calls still in flight (each one is settled by then). A second Ctrl-C ends it at once: the
requests not settled yet stay pending, and the next render resumes them.

The kernel may hand SIGINT to any thread, and the main thread, blocked on a shot's result, would run Python's handler
only once that shot ends (a minute of fal, paid); so the signal is read from a wakeup pipe by a thread of its own.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, NoReturn

from prefect import Flow, get_client
from prefect.client.schemas.objects import FlowRun
from prefect.states import Cancelled, Cancelling, State
from rich.console import Console

from reelflow.flows.cancel import stop_render_spend

EXIT_STOPPED = 130  # what a shell reports for a command ended by Ctrl-C


class CtrlC:
    """The flow run this command runs, once it runs, and what Ctrl-C does to it."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.flow_run: tuple[Flow[..., Any], FlowRun] | None = None
        self.stopper: threading.Thread | None = None
        self.lock = threading.Lock()

    def running(self, flow: Flow[..., Any], flow_run: FlowRun, state: State) -> None:
        """An `on_running` hook: the flow run Ctrl-C stops."""
        self.flow_run = (flow, flow_run)

    def pressed(self) -> bool:
        """Ctrl-C: stop the flow run's spend; again: end now. False while no flow run is running (nothing to stop)."""
        with self.lock:
            if self.flow_run is None:
                return False
            if self.stopper is None:
                self.stopper = threading.Thread(target=_stop, args=(*self.flow_run, self.console), name="reelflow-stop")
                self.stopper.start()
                return True
        self.console.print("stopped without waiting: the requests not settled yet stay pending for the next render",
                           markup=False)
        _exit()


@contextmanager
def stopping_on_ctrl_c(flow: Flow[..., Any], console: Console) -> Iterator[Callable[..., Any]]:
    """`flow`, to call in the block: while it runs, Ctrl-C stops its spend and ends the command with 130; what is
    printed goes to `console`."""
    ctrl_c = CtrlC(console)
    watched = flow.with_options(on_running=[*flow.on_running_hooks, ctrl_c.running])
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread's handlers only
        yield watched
        return
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)

    def interrupted(signum: int, frame: FrameType | None) -> None:
        if ctrl_c.flow_run is None:  # nothing runs yet: interrupt as usual (the watcher acts on a running one)
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupted)
    previous_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    threading.Thread(target=_watch, args=(read_end, ctrl_c), name="reelflow-ctrl-c", daemon=True).start()
    try:
        yield watched
    finally:
        signal.set_wakeup_fd(previous_fd)
        signal.signal(signal.SIGINT, previous)
        os.close(write_end)  # the watcher reads the end of the pipe, and ends
        if ctrl_c.stopper is not None:
            ctrl_c.stopper.join()  # it ends the process


def _watch(read_end: int, ctrl_c: CtrlC) -> None:
    """Each SIGINT, whichever thread the kernel gave it to (the wakeup pipe gets one byte per signal)."""
    try:
        while data := os.read(read_end, 64):
            for _ in range(data.count(signal.SIGINT.value)):
                ctrl_c.pressed()
    finally:
        os.close(read_end)


def _stop(flow: Flow[..., Any], flow_run: FlowRun, console: Console) -> None:
    """Stop the run's spend with its own cancellation hooks, say what each request came to, and exit 130."""
    console.print("stopping: cancelling this render's provider requests (Ctrl-C again leaves them to the next render)",
                  markup=False)
    state = Cancelling(message="Ctrl-C")
    try:
        for each in stop_render_spend(flow, flow_run, state):
            console.print(each.words(), markup=False)
        for hook in flow.on_cancellation_hooks:
            if hook is not stop_render_spend:
                hook(flow=flow, flow_run=flow_run, state=state)
        with get_client(sync_client=True) as client:
            now = client.read_flow_run(flow_run.id).state
            if now is None or not now.is_final():  # a render that ended as Ctrl-C came keeps its end
                client.set_flow_run_state(flow_run.id, Cancelled(message="Ctrl-C: its provider requests were stopped"),
                                          force=True)
        console.print(f"render stopped: flow run {flow_run.id} cancelled", markup=False)
    except Exception as error:  # the exit below must happen whatever failed: say what did
        console.print(f"error: stopping the render: {type(error).__name__}: {error}", markup=False)
    finally:
        console.show_cursor(True)
        _exit()


def _exit() -> NoReturn:
    """End the process now, with 130: the threads still waiting on providers are not waited for."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_STOPPED)
