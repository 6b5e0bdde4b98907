"""graph_problems: one line per problem naming node, class, input, value and what is allowed."""

from __future__ import annotations

from reelflow.providers.comfyui.object_info import graph_problems

from fakes.comfyui import default_models, node_table

INFO = node_table(default_models(), [])


def _wan(**inputs) -> dict:
    base = {"positive": ["2", 0], "negative": ["2", 0], "vae": ["1", 0], "width": 640, "height": 640,
            "length": 81, "batch_size": 1}
    return {"1": {"class_type": "VAELoader", "inputs": {"vae_name": "wan_2.1_vae.safetensors"}},
            "2": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["2", 0]}},
            "13": {"class_type": "WanFirstLastFrameToVideo", "inputs": base | inputs}}


def test_a_good_graph_has_no_problems() -> None:
    assert graph_problems(_wan(), INFO) == []


def test_a_step_the_server_would_not_check_is_named() -> None:
    assert graph_problems(_wan(length=80), INFO) == [
        "node 13 (WanFirstLastFrameToVideo): length 80 is not allowed: 1, 5, 9, … (step 4 from 1)"]
    assert graph_problems(_wan(width=650), INFO) == [
        "node 13 (WanFirstLastFrameToVideo): width 650 is not allowed: 16, 32, 48, … (step 16 from 16)"]


def test_a_missing_model_is_named_with_what_the_server_has() -> None:
    nodes = {"1": {"class_type": "UNETLoader", "inputs": {"unet_name": "x.safetensors", "weight_dtype": "default"}}}
    info = node_table({"unet": ["a.safetensors", "b.safetensors"]}, [])
    assert graph_problems(nodes, info) == [
        "node 1 (UNETLoader): unet_name 'x.safetensors' is not on the server (it has: a.safetensors, b.safetensors)"]
    assert graph_problems(nodes, node_table({}, [])) == [
        "node 1 (UNETLoader): unet_name 'x.safetensors' is not on the server (it has: none)"]


def test_the_newer_combo_shape_is_read() -> None:
    nodes = {"1": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "y.pth"}}}
    assert "model_name 'y.pth' is not on the server (it has: RealESRGAN_x4plus.pth)" in graph_problems(nodes, INFO)[0]


def test_classes_inputs_links_and_types() -> None:
    nodes = {"1": {"class_type": "Flux3Sampler", "inputs": {}},
             "2": {"class_type": "VAEDecode", "inputs": {"samples": ["9", 0]}},
             "3": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": 5}},
             "4": {"class_type": "CreateVideo", "inputs": {"images": ["3", 0], "fps": "fast"}},
             "5": {"class_type": "RandomNoise", "inputs": {"noise_seed": -1, "colour": 1}}}
    assert graph_problems(nodes, INFO) == [
        "node 1 (Flux3Sampler): class_type 'Flux3Sampler' is not a node on this server",
        "node 2 (VAEDecode): vae is missing (required)",
        "node 2 (VAEDecode): samples ['9', 0] links to node 9, which is not in the graph",
        "node 3 (KSamplerSelect): sampler_name 5 is not allowed (allowed: euler, euler_ancestral, heun, dpmpp_2m, "
        "dpmpp_2m_sde, res_multistep, lcm, uni_pc)",
        "node 4 (CreateVideo): images ['3', 0] links to a SAMPLER output, not IMAGE",
        "node 4 (CreateVideo): fps 'fast' is not a number",
        "node 5 (RandomNoise): noise_seed -1 is below the minimum 0",
        "node 5 (RandomNoise): colour 1 is not an input of RandomNoise",
    ]
