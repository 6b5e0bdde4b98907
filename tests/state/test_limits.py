"""Provider slots across processes: never more than N calls in flight, and a killed holder's slot comes back."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from reelflow.state.limits import DEFAULT_LIMITS, Gate, _gate, limit_for, priority, provider_slot

LIMITS = {"local": 2}

# Three threads, each taking a slot `rounds` times and holding it `hold_s`; (entered, left) of every hold on stdout.
# time.monotonic() is one system-wide clock on Linux, so the two processes' intervals can be compared.
HOLDERS = """
import json, sys, threading, time
from pathlib import Path
from reelflow.state.limits import provider_slot
state_dir, rounds, hold_s = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
holds, lock = [], threading.Lock()

def work():
    for _ in range(rounds):
        with provider_slot(state_dir, "local", {"local": 2}):
            entered = time.monotonic()
            time.sleep(hold_s)
            left = time.monotonic()
        with lock:
            holds.append((entered, left))

threads = [threading.Thread(target=work) for _ in range(3)]
sys.stdin.readline()  # start together
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps(holds))
"""

# Takes both of the provider's slots and keeps them until killed.
HOG = """
import sys, time
from pathlib import Path
from reelflow.state.limits import provider_slot
state_dir = Path(sys.argv[1])
with provider_slot(state_dir, "local", {"local": 2}), provider_slot(state_dir, "local", {"local": 2}):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / ".reelflow"


def most_at_once(holds: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant (one that ends as another starts does not overlap it)."""
    edges = sorted([(entered, 1) for entered, _ in holds] + [(left, -1) for _, left in holds])  # at a tie, -1 first
    open_now = most = 0
    for _, step in edges:
        open_now += step
        most = max(most, open_now)
    return most


def test_limits_come_from_the_project_then_the_defaults() -> None:
    assert limit_for("local", LIMITS) == 2
    assert limit_for("fal", LIMITS) == DEFAULT_LIMITS["fal"]
    assert limit_for("someone-new", {}) == 4


def test_never_more_holders_than_the_limit_across_processes_and_threads(state_dir: Path) -> None:
    rounds, hold_s = 3, 0.03
    holders = [
        subprocess.Popen([sys.executable, "-c", HOLDERS, str(state_dir), str(rounds), str(hold_s)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = []
    try:
        for holder in holders:
            assert holder.stdin is not None
            holder.stdin.write("go\n")
            holder.stdin.flush()
        for holder in holders:
            out, _ = holder.communicate(timeout=30)
            assert holder.returncode == 0
            outputs.append(out)
    finally:
        for holder in holders:
            if holder.poll() is None:
                holder.kill()
                holder.wait()
    holds = [tuple(hold) for out in outputs for hold in json.loads(out)]
    assert len(holds) == 2 * 3 * rounds
    assert most_at_once(holds) == 2  # the limit, and all of it used
    assert sorted(path.name for path in (state_dir / "limits").iterdir()) == ["local.0.lock", "local.1.lock"]


def test_a_killed_holders_slots_are_freed(state_dir: Path) -> None:
    hog = subprocess.Popen([sys.executable, "-c", HOG, str(state_dir)], stdout=subprocess.PIPE, text=True)
    entered = threading.Event()

    def take() -> None:
        with provider_slot(state_dir, "local", LIMITS), provider_slot(state_dir, "local", LIMITS):
            entered.set()

    try:
        assert hog.stdout is not None and hog.stdout.readline() == "held\n"
        waiting = threading.Thread(target=take, daemon=True)
        waiting.start()
        assert not entered.wait(0.3), "a third holder got in while both slots were held"
    finally:
        hog.send_signal(signal.SIGKILL)
        hog.wait()
    killed_at = time.monotonic()
    assert entered.wait(5), "the killed holder's slots were never freed"
    assert time.monotonic() - killed_at < 1.0
    waiting.join(5)
    assert not waiting.is_alive()


def _waiting(gate: Gate) -> int:
    return len(gate._waiting)


def test_a_freed_slot_goes_to_the_most_urgent_waiter_then_the_earliest(state_dir: Path) -> None:
    served: list[str] = []
    holding = threading.Event()
    release = threading.Event()

    def call(name: str, rank: int) -> None:
        priority.set(rank)
        with provider_slot(state_dir, "local", {"local": 1}):
            served.append(name)
            if name == "first":
                holding.set()
                release.wait(10)

    first = threading.Thread(target=call, args=("first", 2))
    first.start()
    assert holding.wait(10)
    gate = _gate(state_dir / "limits", "local", 1)
    waiters = []
    for count, (name, rank) in enumerate([("held-a", 2), ("video", 0), ("held-b", 2), ("triptych", 1)], start=1):
        waiters.append(threading.Thread(target=call, args=(name, rank)))
        waiters[-1].start()
        deadline = time.monotonic() + 10
        while _waiting(gate) < count:  # queued in this order
            assert time.monotonic() < deadline
            time.sleep(0.005)
    release.set()
    for thread in [first, *waiters]:
        thread.join(10)
    assert served == ["first", "video", "triptych", "held-a", "held-b"]


class Interrupted(Exception):
    """What the test's signal handler raises in the waiting thread."""


def _interrupt(signum: int, frame: object) -> None:
    raise Interrupted


def test_an_interrupted_waiter_gives_its_place_back() -> None:
    """A waiter stopped while it waits (here by a signal, as Ctrl-C stops a render) leaves the queue."""
    gate = Gate(1)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with gate.held(0):
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)
    previous = signal.signal(signal.SIGUSR1, _interrupt)
    timer = threading.Timer(0.2, lambda: signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1))
    try:
        timer.start()
        entered = []
        with pytest.raises(Interrupted), gate.held(0):
            entered.append(True)
        assert entered == [], "the interrupted waiter never held the place"
    finally:
        timer.cancel()
        signal.signal(signal.SIGUSR1, previous)
    assert _waiting(gate) == 0
    release.set()
    holder.join(10)
    with gate.held(0):  # the one place came back to the gate, not to the interrupted waiter
        assert _waiting(gate) == 0
