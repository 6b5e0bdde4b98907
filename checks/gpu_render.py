"""Render an episode in pod mode against the RunPod fake in front of a real ComfyUI on the CPU, with empty model files.

Run by `make comfyui-check` after checks/comfyui.py (not part of `make test`). `reelflow render` of a two-shot
episode with `"video": "comfyui"` in pod mode: RunPod's fake creates the pod (its proxy forwards to the real
ComfyUI), every graph reelflow queues is accepted, each shot fails with one line naming the loader node that could
not load its empty model, the pod is terminated afterwards, and the ledger holds the pod's time at its $/hr. Then
the same render killed with SIGKILL while the pod runs: `reelflow gpu reap` terminates the pod once its lease is
over, and `reelflow gpu status --json` says so. One line per check; exits 1 on any failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from comfyui import failures, real_comfyui, report  # noqa: E402

from reelflow.state.ledger import Ledger  # noqa: E402

from fakes.runpod import FakeRunPod  # noqa: E402
from projects import PROJECT, storyboard, write_project  # noqa: E402

REELFLOW = Path(sys.executable).with_name("reelflow")
SMALL = {"REELFLOW_FRAME_SCALE": "0.125", "REELFLOW_LOCAL_VIDEO": "replay", "REELFLOW_COMFYUI_POLL_S": "0.2",
         "REELFLOW_RUNPOD_POLL_S": "0.2", "REELFLOW_GPU_RENEW_S": "0.5"}
POD = {"mode": "pod", "gpu_types": ["NVIDIA L40S"], "image": "runpod/comfyui:latest",
       "network_volume_id": "vol0abc123", "idle_stop_s": 600}


def project(root: Path, idle_stop_s: float) -> Path:
    settings = PROJECT | {"providers": {"default": "local", "video": "comfyui"},
                          "comfyui": {"runpod": POD | {"idle_stop_s": idle_stop_s}}}
    return write_project(root, storyboard(only=(2, 2)), settings)


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REELFLOW), *args], capture_output=True, text=True, env=os.environ | env, timeout=600)


def render_fails_on_empty_models(work: Path, runpod: FakeRunPod) -> None:
    root = project(work / "render", 600)
    env = SMALL | runpod.env() | {"REELFLOW_HOME": str(work / "home")}
    done = cli("render", str(root), "--episode", "1", "--json", env=env)
    reasons = [failure["reason"] for failure in json.loads(done.stdout or "{}").get("failures", [])]
    loaders = [reason for reason in reasons if "(UNETLoader)" in reason or "(CLIPLoader)" in reason
               or "(VAELoader)" in reason]
    report("pod render: each shot fails naming the loader of its empty model", done.returncode == 1
           and len(reasons) == 2 and loaders == reasons and all("\n" not in reason for reason in reasons),
           " | ".join(reasons) or done.stderr.strip()[-300:])
    report("pod render: every graph accepted (no refusal before queueing)",
           not any("node_errors" in reason or "not on the server" in reason for reason in reasons))
    report("pod render: afterwards every pod it created is terminated",
           len(runpod.pods) == 1 and runpod.running() == [], f"{len(runpod.pods)} created, {len(runpod.running())} billing")
    rows = Ledger.at(root / ".reelflow").rows("stage = 'gpu'")
    billed = sum(runpod.billed_s(pod.id) * pod.cost_per_hr / 3600 for pod in runpod.pods.values())
    report("pod render: the ledger holds the pod's time at its $/hr",
           len(rows) == 1 and rows[0].status == "completed" and abs(rows[0].cost_usd - billed) <= max(1e-4, billed * 0.05),
           f"ledger ${rows[0].cost_usd if rows else 0:.6f}, RunPod ${billed:.6f}")


def killed_render_is_reaped(work: Path, runpod: FakeRunPod) -> None:
    root = project(work / "killed", 3)
    home = {"REELFLOW_HOME": str(work / "home")} | runpod.env()
    before = set(runpod.pods)
    process = subprocess.Popen([str(REELFLOW), "render", str(root), "--episode", "1", "--json"],
                               env=os.environ | SMALL | home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not [pod for pod in runpod.running() if pod.id not in before]:
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    started = [pod for pod in runpod.pods.values() if pod.id not in before]
    time.sleep(3.5)
    reaped = json.loads(cli("gpu", "reap", "--json", env=home).stdout or "{}").get("reaped", [])
    status = json.loads(cli("gpu", "status", str(root), "--json", env=home).stdout or "{}").get("pods", [])
    report("killed render: `reelflow gpu reap` terminates its pod once the lease is over",
           len(started) == 1 and [entry["id"] for entry in reaped] == [started[0].id]
           and started[0].ended is not None, json.dumps(reaped))
    report("killed render: `reelflow gpu status --json` says terminated",
           [(entry["id"], entry["status"]) for entry in status] == [(started[0].id, "terminated")] if started else False,
           json.dumps(status))


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="reelflow-gpu-render-") as folder:
        work = Path(folder)
        with real_comfyui(work / "comfy") as url:
            if url is None:
                return 1
            with FakeRunPod(boot_s=1.0, upstream=url) as runpod:
                render_fails_on_empty_models(work, runpod)
                killed_render_is_reaped(work, runpod)
            cli("server", "stop", env={"REELFLOW_HOME": str(work / "home")})
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
