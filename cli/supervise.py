"""A small supervisor for a machine without systemd (a RunPod pod, a container, a test): run one command and start it
again whenever it fails, as systemd's `Restart=on-failure` does.

    python -m reelflow.cli.supervise [--restart-delay S] -- reelflow studio worker --pool gpu

A failure is what systemd calls one: a non-zero exit, or death by a signal other than SIGHUP, SIGINT, SIGTERM or
SIGPIPE (a SIGKILL, a segfault). A clean exit, or a stop asked of the supervisor (SIGTERM, SIGINT: passed on to the
command once, which runs in a process group of its own so a Ctrl-C reaches it only through here), ends it. One line per
start and per exit goes to stderr. Unlike systemd, the supervisor leaves the command's own children (a worker's flow
runs) to themselves when the command dies.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

RESTART_DELAY_S = 5.0  # systemd units here say RestartSec=5
CLEAN_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE)  # systemd's clean exits


def failed(returncode: int) -> bool:
    """Whether systemd's Restart=on-failure would start the command again after it ended with `returncode`."""
    if returncode < 0:
        return -returncode not in CLEAN_SIGNALS
    return returncode != 0


def describe(returncode: int) -> str:
    return f"killed by {signal.Signals(-returncode).name}" if returncode < 0 else f"exit code {returncode}"


class Supervisor:
    """Runs `command`, starting it again `restart_delay_s` after each failure, until it ends cleanly or is stopped."""

    def __init__(self, command: Sequence[str], restart_delay_s: float = RESTART_DELAY_S) -> None:
        self.command = list(command)
        self.restart_delay_s = restart_delay_s
        self.process: subprocess.Popen[bytes] | None = None
        self.stopping: int | None = None  # the signal that asked the supervisor to stop

    def stop(self, signum: int, _frame: FrameType | None = None) -> None:
        """Stop restarting, and pass the signal on to the command (once)."""
        if self.stopping is None and self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)
        self.stopping = signum

    def run(self) -> int:
        """Supervise until the command ends cleanly or a stop is asked; returns the command's last exit code."""
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self.stop)
        starts = 0
        while True:
            starts += 1
            self.process = subprocess.Popen(self.command, process_group=0)
            print(f"supervise: start {starts}: pid {self.process.pid}: {' '.join(self.command)}", file=sys.stderr,
                  flush=True)
            returncode = self.process.wait()
            print(f"supervise: pid {self.process.pid} ended ({describe(returncode)})", file=sys.stderr, flush=True)
            if self.stopping is not None or not failed(returncode):
                return returncode if returncode >= 0 else 128 - returncode
            deadline = time.monotonic() + self.restart_delay_s
            while self.stopping is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.stopping is not None:
                return 128 - returncode if returncode < 0 else returncode


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reelflow.cli.supervise", description=__doc__.splitlines()[0])
    parser.add_argument("--restart-delay", type=float, default=RESTART_DELAY_S, metavar="S",
                        help=f"seconds to wait before starting the command again (default {RESTART_DELAY_S:g})")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command (after --)")
    options = parser.parse_args(argv)
    command = options.command[1:] if options.command[:1] == ["--"] else options.command
    if not command:
        parser.error("no command to supervise")
    return Supervisor(command, options.restart_delay).run()


if __name__ == "__main__":
    sys.exit(main())
