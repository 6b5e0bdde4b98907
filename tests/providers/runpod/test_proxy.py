"""FakeRunPod's pod proxy and pods.wait_comfyui / proxy_url: forwarded only to a RUNNING pod's exposed port."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from reelflow.providers.runpod import pods
from reelflow.schemas.errors import ProviderTimeout

from fakes.runpod import FakeRunPod


class _Echo(BaseHTTPRequestHandler):
    """A stand-in ComfyUI: /system_stats answers 200, /slow sleeps, anything else echoes the request."""

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/slow"):
            time.sleep(0.5)
        payload = {"method": self.command, "path": self.path, "body": body.decode(), "x_token": self.headers.get("X-Token")}
        if self.path == "/system_stats":
            payload = {"system": {"comfyui_version": "0.3.64"}}
        data = json.dumps(payload).encode()
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def running_pod(fake: FakeRunPod) -> pods.Pod:
    pod = pods.create_pod("reelflow-proxy", gpu_type="NVIDIA L40S", image="runpod/comfyui:latest")
    return pods.wait_running(pod.id, deadline_s=5, poll_s=0.02)


def test_proxy_url_uses_the_template_or_runpods_host(fake: FakeRunPod, monkeypatch: pytest.MonkeyPatch) -> None:
    assert pods.proxy_url("abc123") == f"{fake.url}/proxy/abc123/8188"
    monkeypatch.delenv("REELFLOW_RUNPOD_PROXY_URL")
    assert pods.proxy_url("abc123", 8188) == "https://abc123-8188.proxy.runpod.net"


def test_the_proxy_forwards_method_body_query_and_headers(fake: FakeRunPod, upstream: str) -> None:
    fake.upstream = upstream
    pod = running_pod(fake)
    url = pods.proxy_url(pod.id)
    pods.wait_comfyui(url, deadline_s=5, poll_s=0.02, headers={"X-Token": "t1"})
    answer = httpx.post(f"{url}/prompt?x=1", content=b'{"prompt": {}}', headers={"X-Token": "t1"})
    assert answer.status_code == 201
    assert answer.json() == {"method": "POST", "path": "/prompt?x=1", "body": '{"prompt": {}}', "x_token": "t1"}
    assert fake.proxied[-1].path == "/prompt?x=1" and fake.proxied[-1].status == 201


def test_the_proxy_refuses_booting_unexposed_and_terminated_pods(fake: FakeRunPod, upstream: str) -> None:
    fake.upstream = upstream
    fake.boot_s = 0.3
    pod = pods.create_pod("reelflow-proxy", gpu_type="NVIDIA L40S", image="runpod/comfyui:latest")
    assert httpx.get(f"{pods.proxy_url(pod.id)}/system_stats").status_code == 502  # running, not booted
    pods.wait_running(pod.id, deadline_s=5, poll_s=0.02)
    assert httpx.get(f"{pods.proxy_url(pod.id)}/system_stats").status_code == 200
    assert httpx.get(f"{pods.proxy_url(pod.id, 8080)}/").status_code == 404  # FileBrowser's port is never exposed
    assert httpx.get(f"{pods.proxy_url(pod.id, 22)}/").status_code == 404
    pods.terminate_pod(pod.id)
    assert httpx.get(f"{pods.proxy_url(pod.id)}/system_stats").status_code == 404
    assert httpx.get(f"{pods.proxy_url('nosuchpod')}/system_stats").status_code == 404


def test_a_slow_upstream_is_cut_with_cloudflares_524(fake: FakeRunPod, upstream: str) -> None:
    fake.upstream, fake.proxy_timeout_s = upstream, 0.1
    pod = running_pod(fake)
    assert httpx.get(f"{pods.proxy_url(pod.id)}/slow").status_code == 524


def test_wait_comfyui_times_out_with_the_last_status(fake: FakeRunPod) -> None:
    pod = running_pod(fake)  # no upstream: the proxy answers 502
    with pytest.raises(ProviderTimeout, match=r"^runpod: the pod's ComfyUI not answering after 0.2 s \(HTTP 502\)$") as late:
        pods.wait_comfyui(pods.proxy_url(pod.id), deadline_s=0.2, poll_s=0.05)
    assert "proxy" not in str(late.value), "the proxy URL, the only guard of ComfyUI, is never in a message"
