"""ComfyClient against the loopback ComfyUI: upload, queue, poll, download, and every failure it names."""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio_ffmpeg
import pytest
from PIL import Image

from reelflow.providers.comfyui.client import ComfyClient, GraphFailed, GraphRefused, PromptLost
from reelflow.providers.comfyui.graphs import WanSettings, upscale_graph, video_graph
from reelflow.schemas.errors import OutcomeUnknown, ProviderTimeout, ServerError, TransportError
from reelflow.schemas.requests import UpscaleRequest, VideoRequest

from fakes.comfyui import FakeComfyUI


def _upscale(tmp_path: Path, picture, client: ComfyClient, files: dict):
    source = picture(tmp_path / "in.png", (40, 30), (200, 100, 0))
    graph = upscale_graph(UpscaleRequest(model="up", image=source, width=100, height=70), files)
    for name, path in graph.images.items():
        client.upload(path, name)
    return graph


def test_an_image_is_queued_polled_and_downloaded_under_a_path_prefix(tmp_path: Path, picture, files) -> None:
    with FakeComfyUI(tmp_path / "comfy", run_s=0.1, prefix="/comfy") as fake:
        client = ComfyClient(fake.url, poll_s=0.02, timeout_s=2.0, headers={"Authorization": "Bearer t"})
        graph = _upscale(tmp_path, picture, client, files)
        client.check(graph.nodes)
        outputs = client.wait(client.queue(graph.nodes))
        [file] = client.output_files(outputs, graph.output)
        path = client.download(file, tmp_path / "out" / "up.png")
        with Image.open(path) as image:
            assert image.size == (100, 70)
        assert (file.subfolder, file.type) == ("reelflow", "output")
        assert all(request["path"].startswith("/comfy/") for request in fake.requests)
        assert all(request["headers"].get("Authorization") == "Bearer t" for request in fake.requests)
        history = [request for request in fake.requests if request["path"].startswith("/comfy/history/")]
        assert len(history) >= 3  # polled with short requests, never one long one
        assert any(request["path"] == "/comfy/view" for request in fake.requests)
        assert fake.uploads == list(graph.images)
        client.close()


def test_a_video_comes_back_as_an_mp4_under_images(tmp_path: Path, picture, fake: FakeComfyUI, client, files) -> None:
    first = picture(tmp_path / "a.png", (64, 48), (250, 0, 0))
    last = picture(tmp_path / "b.png", (64, 48), (0, 0, 250))
    request = VideoRequest(model="wan", first=first, last=last, prompt="go", num_frames=9, fps=8, width=64, height=48)
    graph = video_graph(request, files, [], [], WanSettings(steps=4))
    for name, path in graph.images.items():
        client.upload(path, name)
    outputs = client.wait(client.queue(graph.nodes))
    assert outputs[graph.output]["animated"] == [True]
    [file] = client.output_files(outputs, graph.output)
    assert file.filename.endswith(".mp4")
    video = client.download(file, tmp_path / "v.mp4")
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", str(video), "-map", "0:v", "-f", "null", "-"],
                           capture_output=True, text=True)
    assert "frame=    9" in probe.stderr or "frame=9" in probe.stderr.replace(" ", "")


def test_a_bad_value_is_refused_by_check_and_by_the_server(tmp_path: Path, picture, fake: FakeComfyUI, client, files) -> None:
    graph = _upscale(tmp_path, picture, client, files)
    graph.nodes["2"]["inputs"]["model_name"] = "missing.pth"
    graph.nodes["3"]["inputs"]["upscale_model"] = ["2", 0]
    graph.nodes["4"]["inputs"]["width"] = -5
    with pytest.raises(GraphRefused) as checked:
        client.check(graph.nodes)
    assert str(checked.value) == (
        "comfyui: node 2 (UpscaleModelLoader): model_name 'missing.pth' is not on the server "
        "(it has: RealESRGAN_x4plus.pth); node 4 (ImageScale): width -5 is below the minimum 0")
    with pytest.raises(GraphRefused) as refused:
        client.queue(graph.nodes)
    message = str(refused.value)
    assert "node 2 (UpscaleModelLoader): model_name 'missing.pth': Value not in list" in message
    assert "node 4 (ImageScale): width -5: Value -5 smaller than min of 0" in message
    assert "\n" not in message and not refused.value.retryable


def test_an_unknown_class_is_refused_with_the_servers_message(client) -> None:
    with pytest.raises(GraphRefused, match="comfyui: Cannot execute because node Flux9 does not exist"):
        client.queue({"1": {"class_type": "Flux9", "inputs": {}}})


def test_an_empty_model_file_fails_naming_the_node_type(tmp_path: Path, picture, fake: FakeComfyUI, client, files) -> None:
    fake.empty_models.add(files["upscale"].name)
    graph = _upscale(tmp_path, picture, client, files)
    with pytest.raises(GraphFailed, match=r"^comfyui: node 2 \(UpscaleModelLoader\): EOFError$") as failed:
        client.wait(client.queue(graph.nodes))
    assert not failed.value.retryable and not failed.value.billed


def test_an_empty_safetensors_gives_comfyuis_message(tmp_path: Path, fake: FakeComfyUI, client, files) -> None:
    fake.empty_models.add("ae.safetensors")
    nodes = {"1": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
             "2": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 1}},
             "3": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0], "vae": ["1", 0]}},
             "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "x"}}}
    with pytest.raises(GraphFailed, match=r"^comfyui: node 1 \(VAELoader\): Error while deserializing header: "
                                          r"header too small$"):
        client.wait(client.queue(nodes))


def test_a_forgotten_prompt_is_lost(tmp_path: Path, picture, fake: FakeComfyUI, client, files) -> None:
    fake.run_s = 5.0
    prompt_id = client.queue(_upscale(tmp_path, picture, client, files).nodes)
    fake.forget()
    with pytest.raises(PromptLost) as lost:
        client.wait(prompt_id)
    assert lost.value.billed and prompt_id in str(lost.value)


def test_past_the_deadline_the_prompt_is_interrupted(tmp_path: Path, picture, fake: FakeComfyUI, files) -> None:
    fake.run_s = 5.0
    client = ComfyClient(fake.url, poll_s=0.02, deadline_s=0.2, timeout_s=2.0)
    prompt_id = client.queue(_upscale(tmp_path, picture, client, files).nodes)
    with pytest.raises(ProviderTimeout, match="did not finish in 0.2 s; interrupted"):
        client.wait(prompt_id)
    assert fake.interrupts == [prompt_id]
    client.close()


def test_transport_faults_map_to_reelflow_errors(tmp_path: Path, picture, fake: FakeComfyUI, client, files) -> None:
    graph = _upscale(tmp_path, picture, client, files)
    fake.fail_next = [503]
    with pytest.raises(ServerError):
        client.queue(graph.nodes)
    fake.prompt_delay_s = 0.5
    with pytest.raises(OutcomeUnknown):
        ComfyClient(fake.url, timeout_s=0.2).queue(graph.nodes)
    with pytest.raises(TransportError):
        ComfyClient("http://127.0.0.1:9", timeout_s=0.5).system_stats()


def test_api_prefixed_routes_answer_too(client, fake: FakeComfyUI) -> None:
    api = ComfyClient(fake.url + "/api", timeout_s=2.0)
    assert api.system_stats()["system"]["comfyui_version"] == "fake"
    assert "Flux2Scheduler" in api.object_info()
    assert api.queued("nope") is False and api.history("nope") is None
