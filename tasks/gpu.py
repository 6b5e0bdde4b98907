"""The GPU providers of a project: ComfyUI on the studio's server, on a RunPod pod reelflow starts and stops, or on a
RunPod serverless endpoint; and the pods' lifecycle, so none is ever left billing.

A pod is started only when a graph needs one, after the budget holds its start-up and idle time; it is recorded
(state/pods.py) before RunPod is asked for it, leased while work runs, and terminated when the last run using it
ends, when its lease runs out (`reap`: the `reap-gpu` flow, `reelflow gpu reap`), or by `reelflow gpu down`. The
next GPU type is tried when RunPod has none of one; a pod that never came up is terminated at once.
"""

from __future__ import annotations

import fcntl
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from reelflow.providers.comfyui.client import ComfyClient
from reelflow.providers.comfyui.hosts import ServerHost, auth_headers, client_for
from reelflow.providers.comfyui.provider import ComfyUIProvider
from reelflow.providers.runpod import pods
from reelflow.providers.runpod.errors import KEY_ENV, NoCapacity, api_key
from reelflow.schemas import gpu
from reelflow.schemas.env import env_number, reelflow_home
from reelflow.schemas.errors import ContractError, ProviderError
from reelflow.schemas.project import GPU_PROVIDERS, Project, RunpodPod
from reelflow.schemas.report import PodLine
from reelflow.state.budget import BudgetExceeded, Budgets, Caps
from reelflow.state.db import database
from reelflow.state.ledger import Ledger
from reelflow.state.pods import MachinePods, PodBook, PodRecord
from reelflow.tasks.job import run_logger

if TYPE_CHECKING:
    from reelflow.providers.runpod.volume import Volume

POLL_ENV = "REELFLOW_RUNPOD_POLL_S"
RENEW_ENV = "REELFLOW_GPU_RENEW_S"  # how often a lease is renewed while work runs (default: a third of it, ≤ 60 s)
POLL_S = 5.0
USER = f"{socket.gethostname()}:{os.getpid()}"  # this process, as a pod's user
STATUS_WORDS = {"creating": "starting", "stopping": "stopped"}  # as `reelflow gpu status` says them


@dataclass(frozen=True)
class Payer:
    """Who pays for a pod started for the current call: its run (and parent run) under these caps."""

    run: str
    parent_run: str | None
    caps: Caps


payer: ContextVar[Payer | None] = ContextVar("gpu_payer", default=None)


def iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def pod_line(record: PodRecord) -> PodLine:
    """A pod as `reelflow gpu status` and a render's report show it (status: starting | running | stopped |
    terminated; stopped: being terminated)."""
    end = record.stopped_at if record.stopped_at is not None else time.time()
    return PodLine(id=record.id, name=record.name, project=record.project, gpu=record.gpu,
                   status=STATUS_WORDS.get(record.status, record.status), cost_per_hr=record.cost_per_hr,
                   started_at=iso(record.started_at), lease_until=iso(record.lease_until),
                   seconds=round(max(0.0, end - record.started_at), 1), cost_usd=record.cost_usd())


def pods_during(state_dir: Path, since: float) -> list[PodLine]:
    """The project's pods that ran at some time since `since` (a run's start)."""
    if not (state_dir / "state.db").exists():
        return []
    book = PodBook(state_dir, reelflow_home())
    return [pod_line(record) for record in book.made() if record.stopped_at is None or record.stopped_at >= since]


class PodHost:
    """A project's RunPod pod running ComfyUI: reused while it runs, started (and paid for) when a graph needs it."""

    share = True

    def __init__(self, root: Path, project: Project, state_dir: Path, home: Path) -> None:
        assert project.comfyui is not None and isinstance(project.comfyui.runpod, RunpodPod)
        self.settings: RunpodPod = project.comfyui.runpod
        self.code, self.state_dir = project.code, state_dir
        self.book = PodBook(state_dir, home, root)
        self.budgets = Budgets(database(state_dir))
        self.poll_s = env_number(POLL_ENV, POLL_S, positive=True)
        self._clients: dict[str, ComfyClient] = {}
        self._in_flight: dict[str, int] = {}
        self._lock = threading.Lock()
        self._price: float | None = None

    def price_per_s(self) -> float:
        """The running pod's $/s, else what a new one would cost."""
        record = self.book.running()
        return (record.cost_per_hr if record is not None else self.planned_price()) / 3600

    def planned_price(self) -> float:
        """The $/hr a new pod is budgeted at: project.json's `cost_per_hr`, else RunPod's price of the first type."""
        if self.settings.cost_per_hr is not None:
            return self.settings.cost_per_hr
        if self._price is None:
            self._price = pods.gpu_price(self.settings.gpu_types[0])
            if self._price is None:
                raise ContractError(f"project.json: comfyui.runpod.gpu_types: RunPod does not know "
                                    f"{self.settings.gpu_types[0]!r}; set cost_per_hr or a GPU type RunPod lists")
        return self._price

    def known(self) -> ComfyClient | None:
        record = self.book.running()
        return None if record is None else self._client(record)

    def _client(self, record: PodRecord) -> ComfyClient:
        assert record.id is not None
        with self._lock:
            if record.name not in self._clients:
                self._clients[record.name] = client_for(pods.proxy_url(record.id))
            return self._clients[record.name]

    @contextmanager
    def session(self) -> Iterator[ComfyClient]:
        """The project's pod, started when none runs, its lease renewed while the block's work runs."""
        record = self.up()
        with self._working(record.name):
            yield self._client(record)

    def up(self, user: str = USER) -> PodRecord:
        """The project's running pod (`user`, by default this process, now one of its users), started when there is
        none."""
        with _project_lock(self.state_dir):
            record = self.book.running()
            if record is None:
                record = self._start()
            self.book.use(record.name, user)
            return self.book.renew(record.name)

    def _start(self) -> PodRecord:
        tried = []
        for gpu_type in self.settings.gpu_types:
            try:
                return self._start_one(gpu_type)
            except NoCapacity as error:
                tried.append(f"{gpu_type} ({error})")
        raise NoCapacity(f"runpod: no pod could be started: {'; '.join(tried)}", provider="runpod")

    def _start_one(self, gpu_type: str) -> PodRecord:
        """Hold the budget, record the pod, create it, and wait until ComfyUI answers through the proxy; a pod that
        never came up is terminated."""
        price = self.settings.cost_per_hr or pods.gpu_price(gpu_type) or self.planned_price()
        paying = payer.get()
        held = price * (gpu.POD_BOOT_S + self.settings.idle_stop_s) / 3600
        try:
            reservation = None if paying is None else self.budgets.reserve(
                paying.run, held, paying.caps, parent_run=paying.parent_run)
        except BudgetExceeded as error:
            raise BudgetExceeded(f"{str(error).removesuffix('; not submitted')}: its start-up and idle time at "
                                 f"${price:.2f}/hr; no pod started") from None
        name = self.book.next_name(self.code)
        self.book.creating(name, gpu_type, price, self.settings.idle_stop_s, run=paying and paying.run,
                           parent_run=paying and paying.parent_run, reservation=reservation)
        try:
            pod = pods.create_pod(name, gpu_type=gpu_type, image=self.settings.image,
                                  network_volume_id=self.settings.network_volume_id,
                                  data_center_id=self.settings.datacenter, cloud_type=self.settings.cloud_type,
                                  container_disk_gb=self.settings.container_disk_gb)
        except NoCapacity as error:
            self.book.never_made(name, str(error))
            raise
        except BaseException as error:
            self._abandon(name, f"create failed: {error}")
            raise
        self.book.created(name, pod.id, pod.cost_per_hr or None)
        try:
            pods.wait_running(pod.id, deadline_s=self.settings.boot_timeout_s, poll_s=self.poll_s)
            pods.wait_comfyui(pods.proxy_url(pod.id), deadline_s=self.settings.boot_timeout_s, poll_s=self.poll_s)
        except BaseException as error:
            stop(self.book, name, f"did not come up: {error}")
            raise
        record = self.book.ready(name)
        run_logger().info("pod %s (%s, %s at $%.2f/hr) is up; it stops %g s after its last work", record.id, name,
                          gpu_type, record.cost_per_hr, record.idle_stop_s)
        return record

    def _abandon(self, name: str, detail: str) -> None:
        """The create call failed without an answer: a pod RunPod made anyway is found by its name and terminated."""
        try:
            found = pods.find_pod(name)
        except ProviderError:
            return  # the record stays `creating`: the reaper looks for it by name once its lease is over
        if found is None:
            self.book.never_made(name, detail)
            return
        self.book.created(name, found.id, found.cost_per_hr or None)
        stop(self.book, name, detail)

    @contextmanager
    def _working(self, name: str) -> Iterator[None]:
        """Count the work in flight on the pod; while any runs, a thread renews the lease. When the last ends, the
        pod is stopped once its lease runs out with no new work (here or in any other process)."""
        with self._lock:
            self._in_flight[name] = self._in_flight.get(name, 0) + 1
            first = self._in_flight[name] == 1
        if first:
            threading.Thread(target=self._renew, args=(name,), daemon=True, name=f"lease-{name}").start()
        try:
            yield
        finally:
            with self._lock:
                self._in_flight[name] -= 1
                idle = self._in_flight[name] == 0
            self.book.renew(name)  # the idle time counts from the end of the last work
            if idle:
                stopper = threading.Timer(self.settings.idle_stop_s + 0.5, self._stop_if_idle, args=(name,))
                stopper.daemon = True
                stopper.start()

    def _stop_if_idle(self, name: str) -> None:
        """The lease ran out with no work: terminate the pod (unless work started again, or renewed it elsewhere)."""
        with self._lock:
            if self._in_flight.get(name):
                return
        stop(self.book, name, f"idle for {self.settings.idle_stop_s:g} s", expired_only=True)

    def _renew(self, name: str) -> None:
        every = env_number(RENEW_ENV, min(60.0, self.settings.idle_stop_s / 3), positive=True)
        while True:
            time.sleep(every)
            with self._lock:
                if not self._in_flight.get(name):
                    return
            self.book.renew(name)


@contextmanager
def _project_lock(state_dir: Path) -> Iterator[None]:
    """One process at a time starts (or picks) a project's pod, on this machine."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / "pods.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def stop(book: PodBook, name: str, reason: str, *, expired_only: bool = False) -> PodRecord | None:
    """Terminate a pod (its lease over, when `expired_only`) and settle its row; None when it was not to stop."""
    record = book.claim_stop(name, expired_only=expired_only)
    if record is None:
        return None
    pod_id = record.id
    if pod_id is None:  # recorded, but the create's answer never came: look for it by name
        found = pods.find_pod(name)
        pod_id = None if found is None else found.id
    if pod_id is not None:
        pods.terminate_pod(pod_id)
    done = book.terminated(name, reason)
    run_logger().info("pod %s (%s) terminated after %.0f s, $%.4f: %s", pod_id, name,
                      (done.stopped_at or 0) - done.started_at, done.cost_usd(), reason)
    return done


_providers: dict[tuple[Path, str], ComfyUIProvider] = {}
_providers_lock = threading.Lock()


def gpu_provider(root: Path, project: Project, state_dir: Path, name: str) -> ComfyUIProvider:
    """The project's `comfyui` (or `runpod`) provider, one per project and process."""
    key = (root, name)
    with _providers_lock:
        if key not in _providers:
            _providers[key] = _build(root, project, state_dir, name)
        return _providers[key]


def _build(root: Path, project: Project, state_dir: Path, name: str) -> ComfyUIProvider:
    settings = project.comfyui
    if settings is None or (name == "runpod" and settings.runpod is None):
        raise ContractError(f'project.json: providers: {name} needs "comfyui": '
                            + ('{"url": ...} or ' if name == "comfyui" else "") + '{"runpod": {...}}')
    ledger = Ledger.at(state_dir)

    def measured(model: str) -> float | None:
        return ledger.mean_seconds(tuple(GPU_PROVIDERS), model)

    if settings.runpod is None or (name == "comfyui" and settings.url is not None):
        assert settings.url is not None
        return ComfyUIProvider(name, settings, project.wan, host=ServerHost(settings.url, auth_headers(
            settings.auth_header_env)), measured=measured)
    api_key()  # RUNPOD_API_KEY, named when missing, before anything starts
    pod = settings.runpod if isinstance(settings.runpod, RunpodPod) else None  # a serverless endpoint names no volume
    volume = None if pod is None else network_volume(pod.network_volume_id, pod.datacenter)
    host = None if pod is None else PodHost(root, project, state_dir, reelflow_home())
    return ComfyUIProvider(name, settings, project.wan, host=host, volume=volume, measured=measured)


def network_volume(volume_id: str | None, datacenter: str | None) -> Volume | None:
    """The network volume over its S3 API, when the project names one and its S3 keys are set."""
    if volume_id is None or datacenter is None or not os.environ.get("RUNPOD_S3_ACCESS_KEY_ID"):
        return None
    from reelflow.providers.runpod.volume import Volume  # boto3: imported only where a volume is used

    return Volume(volume_id, datacenter)


def release(state_dir: Path) -> list[PodRecord]:
    """This process is done with the project's pods: each one no run uses any more is terminated now."""
    book = PodBook(state_dir, reelflow_home())
    stopped = []
    for record in book.used_by(USER):
        if book.leave(record.name, USER) == 0 and (done := stop(book, record.name, "the last run using it ended")):
            stopped.append(done)
    return stopped


@dataclass(frozen=True)
class Reaped:
    id: str | None
    name: str
    project: str
    reason: str


def reap(home: Path) -> tuple[list[Reaped], list[Reaped]]:
    """Terminate every pod this machine recorded whose lease is over, and every `reelflow-` pod RunPod lists that
    this machine recorded as stopped or never saw an answer for; returns (reaped, kept)."""
    reaped: list[Reaped] = []
    kept: list[Reaped] = []
    recorded: dict[str, PodRecord] = {}
    now = time.time()
    for state_dir in MachinePods(home).state_dirs():
        if not (state_dir / "state.db").exists():
            continue
        book = PodBook(state_dir, home)
        for record in book.all():
            recorded[record.name] = record
            if record.status == "terminated":
                continue
            if record.lease_until > now:
                kept.append(Reaped(record.id, record.name, record.project, f"lease until {iso(record.lease_until)}"))
                continue
            done = stop(book, record.name, "lease over: reaped", expired_only=True)
            if done is not None:
                recorded[record.name] = done
                reaped.append(Reaped(done.id, done.name, done.project, "lease over"))
    if not os.environ.get(KEY_ENV):  # a studio without RunPod: nothing to list (a record needs the key to exist)
        return reaped, kept
    for listed in pods.list_pods("reelflow-"):
        record = recorded.get(listed.name)
        if record is not None and record.status == "terminated":
            pods.terminate_pod(listed.id)  # recorded as stopped, still listed: it bills
            reaped.append(Reaped(listed.id, listed.name, record.project, "recorded as terminated, still listed"))
        elif record is None:
            kept.append(Reaped(listed.id, listed.name, "", "not started by this machine (no record here)"))
    return reaped, kept
