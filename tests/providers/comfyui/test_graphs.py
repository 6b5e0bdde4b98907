"""The graph builders: every graph passes the fake's object_info and /prompt validation, with the right settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelflow.providers.comfyui.graphs import (
    WanSettings,
    angle_graph,
    keyframe_graph,
    previz_graph,
    upload_name,
    upscale_graph,
    video_graph,
    wan_loras,
)
from reelflow.providers.comfyui.object_info import graph_problems
from reelflow.schemas.requests import EditRequest, ImageRequest, UpscaleRequest, VideoRequest


def _by_class(nodes: dict, class_type: str) -> list[dict]:
    return [node["inputs"] for node in nodes.values() if node["class_type"] == class_type]


def _graphs(tmp_path: Path, picture, files: dict) -> dict:
    first = picture(tmp_path / "first.png", (64, 48), (200, 10, 10))
    last = picture(tmp_path / "last.png", (64, 48), (10, 10, 200))
    image = ImageRequest(model="flux2", prompt="a ship", width=1000, height=560, seed=7)
    video = VideoRequest(model="wan", first=first, last=last, prompt="sail", num_frames=9, fps=16, width=64, height=48)
    return {
        "keyframe": keyframe_graph(image, files, [("reelflow-abc.safetensors", 0.8)]),
        "previz": previz_graph(image, files),
        "upscale": upscale_graph(UpscaleRequest(model="up", image=first, width=200, height=150), files),
        "video": video_graph(video, files, [("reelflow-abc.safetensors", 1.0)], [], WanSettings()),
        "angle": angle_graph(EditRequest(model="qwen", image=first, prompt="turn left", references=(last,),
                                         width=96), files),
    }


def test_every_graph_is_accepted_by_the_fake(tmp_path: Path, picture, fake, client, files) -> None:
    fake.models["loras"].append("reelflow-abc.safetensors")
    for name, graph in _graphs(tmp_path, picture, files).items():
        assert graph_problems(graph.nodes, fake.object_info()) == [], name
        for upload, path in graph.images.items():
            assert client.upload(path, upload) == upload
        assert client.queue(graph.nodes), name


def test_keyframe_rounds_its_latent_up_to_16_and_chains_loras(tmp_path: Path, picture, files) -> None:
    graph = _graphs(tmp_path, picture, files)["keyframe"]
    assert _by_class(graph.nodes, "EmptyFlux2LatentImage") == [{"width": 1008, "height": 560, "batch_size": 1}]
    assert _by_class(graph.nodes, "Flux2Scheduler") == [{"steps": 28, "width": 1008, "height": 560}]
    assert _by_class(graph.nodes, "RandomNoise") == [{"noise_seed": 7}]
    assert _by_class(graph.nodes, "CLIPLoader")[0]["type"] == "flux2"
    lora = _by_class(graph.nodes, "LoraLoaderModelOnly")[0]
    assert lora["lora_name"] == "reelflow-abc.safetensors" and lora["strength_model"] == 0.8
    assert graph.nodes[graph.output]["class_type"] == "SaveImage" and graph.kind == "image"


def test_previz_caps_steps_at_eight(tmp_path: Path, picture, files) -> None:
    sampler = _by_class(_graphs(tmp_path, picture, files)["previz"].nodes, "KSampler")[0]
    assert (sampler["steps"], sampler["sampler_name"], sampler["cfg"]) == (8, "res_multistep", 1.0)


def test_video_splits_steps_between_experts_and_saves_h264_mp4(tmp_path: Path, picture, files) -> None:
    graph = _graphs(tmp_path, picture, files)["video"]
    high, low = _by_class(graph.nodes, "KSamplerAdvanced")
    assert (high["start_at_step"], high["end_at_step"], high["add_noise"]) == (0, 15, "enable")
    assert high["return_with_leftover_noise"] == "enable"
    assert (low["start_at_step"], low["end_at_step"], low["add_noise"]) == (15, 10000, "disable")
    assert [n["shift"] for n in _by_class(graph.nodes, "ModelSamplingSD3")] == [5.0, 5.0]
    assert _by_class(graph.nodes, "WanFirstLastFrameToVideo")[0]["length"] == 9
    assert _by_class(graph.nodes, "SaveVideo")[0] | {} == {"video": [str(int(graph.output) - 1), 0],
                                                           "filename_prefix": "reelflow/video", "format": "mp4",
                                                           "codec": "h264"}
    assert graph.kind == "video" and len(graph.images) == 2
    # the LoRA sits on the high expert's chain only
    lora_id = next(i for i, n in graph.nodes.items() if n["class_type"] == "LoraLoaderModelOnly")
    assert graph.nodes[lora_id]["inputs"]["model"] == ["1", 0]


def test_wan_loras_follow_their_transformer() -> None:
    high, low = wan_loras([("a", 1.0, "high"), ("b", 0.5, "low"), ("c", 0.7, None), ("d", 0.2, "both")])
    assert high == [("a", 1.0), ("c", 0.7), ("d", 0.2)]
    assert low == [("b", 0.5), ("c", 0.7), ("d", 0.2)]


def test_angle_puts_references_in_image2_and_sizes_the_latent(tmp_path: Path, picture, files) -> None:
    graph = _graphs(tmp_path, picture, files)["angle"]
    positive = _by_class(graph.nodes, "TextEncodeQwenImageEditPlus")[0]
    assert set(positive) >= {"image1", "image2"} and "image3" not in positive
    assert _by_class(graph.nodes, "EmptySD3LatentImage") == [{"width": 96, "height": 80, "batch_size": 1}]
    assert [n["lora_name"] for n in _by_class(graph.nodes, "LoraLoaderModelOnly")] == [
        files["qwen_lightning"].name, files["qwen_angles"].name]


def test_keyframe_chains_each_reference_image_onto_the_prompt_at_a_megapixel(
    tmp_path: Path, picture, fake, client, files
) -> None:
    costume = picture(tmp_path / "costume.png", (300, 400), (200, 10, 10))
    location = picture(tmp_path / "set.png", (640, 360), (10, 10, 200))
    request = ImageRequest(model="flux2", prompt="a ship", width=1000, height=560, seed=7, references=(costume, location))
    graph = keyframe_graph(request, files, [])
    assert graph_problems(graph.nodes, fake.object_info()) == []
    for name, path in graph.images.items():
        client.upload(path, name)
    assert client.queue(graph.nodes), "the fake ComfyUI takes the graph"

    assert [node["image"] for node in _by_class(graph.nodes, "LoadImage")] == [upload_name(costume), upload_name(location)]
    assert [(node["width"], node["height"]) for node in _by_class(graph.nodes, "ImageScale")] == [(880, 1184), (1360, 768)]
    chain, node = [], graph.nodes[_by_class(graph.nodes, "FluxGuidance")[0]["conditioning"][0]]
    while node["class_type"] == "ReferenceLatent":  # the prompt's conditioning, then each reference in order
        scaled = graph.nodes[graph.nodes[node["inputs"]["latent"][0]]["inputs"]["pixels"][0]]
        chain.append(graph.nodes[scaled["inputs"]["image"][0]]["inputs"]["image"])
        node = graph.nodes[node["inputs"]["conditioning"][0]]
    assert node["class_type"] == "CLIPTextEncode" and chain == [upload_name(location), upload_name(costume)]
    with pytest.raises(ValueError, match="at most 6 reference images, got 7"):
        keyframe_graph(request.model_copy(update={"references": (costume,) * 7}), files, [])


def test_upload_names_are_content_addressed(tmp_path: Path, picture) -> None:
    one = picture(tmp_path / "one.png", (8, 8), (1, 2, 3))
    same = picture(tmp_path / "same.png", (8, 8), (1, 2, 3))
    other = picture(tmp_path / "other.png", (8, 8), (3, 2, 1))
    assert upload_name(one) == upload_name(same) != upload_name(other)
    assert upload_name(one).startswith("reelflow-") and upload_name(one).endswith(".png")
