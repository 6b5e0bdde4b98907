"""A throwaway PostgreSQL cluster for the tests (Debian's binaries, run as `postgres` when the tests run as root)."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def postgres_bin() -> Path | None:
    """The folder of initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    installed = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return installed[-1].parent if installed else None


BIN = postgres_bin()
NO_POSTGRES = "no PostgreSQL server binaries (make test installs Debian's)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Cluster:
    url: str  # postgresql://postgres@127.0.0.1:PORT/postgres
    pid: int  # the postmaster


@contextmanager
def running_cluster(*, durable: bool = False) -> Iterator[Cluster]:
    """A cluster on a free loopback port, trusting every local connection. The tests' turns fsync, synchronous
    commits and full-page writes off for speed; a `durable` one (the benchmarks') keeps Postgres's own durability."""
    from reelflow.cli import studio

    assert BIN is not None, NO_POSTGRES
    folder = Path(tempfile.mkdtemp(prefix="reelflow-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        user = "postgres" if "postgres" in {entry.pw_name for entry in pwd.getpwall()} else "nobody"
        shutil.chown(folder, user)
        as_user = ["runuser", "-u", user, "--"]
    data, port = folder / "data", free_port()
    subprocess.run([*as_user, str(BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                    *([] if durable else ["--no-sync"])], check=True, capture_output=True)
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=300"
    if not durable:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    subprocess.run([*as_user, str(BIN / "pg_ctl"), "-D", str(data), "-l", str(folder / "postgres.log"), "-o", options,
                    "-w", "start"], check=True, capture_output=True)
    postmaster = int((data / "postmaster.pid").read_text().split()[0])
    try:
        yield Cluster(f"postgresql://postgres@127.0.0.1:{port}/postgres", postmaster)
    finally:
        subprocess.run([*as_user, str(BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True)
        if studio.alive(postmaster):
            studio.stop_tree(postmaster)
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def cluster() -> Iterator[str]:
    """The tests' cluster; yields `postgresql://postgres@…/postgres`."""
    with running_cluster() as running:
        yield running.url


def new_database(server: str) -> str:
    """A fresh, empty database on the cluster at `server`; its URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return server.rsplit("/", 1)[0] + f"/{name}"
