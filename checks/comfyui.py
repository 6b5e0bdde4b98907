"""Check reelflow's ComfyUI graphs and client against a real ComfyUI checkout, on the CPU, with empty model files.

Run by `make comfyui-check COMFYUI_DIR=/path/to/ComfyUI COMFYUI_PYTHON=/path/to/its/python` (not part of
`make test`). It starts `main.py --cpu` on a free loopback port with a temp folder of empty files named like every
MODEL_FILES entry (plus a test LoRA) through an extra_model_paths yaml, then:

- posts every graph reelflow builds: the server's validation must pass (node_errors empty); a graph whose node
  classes this ComfyUI lacks (FLUX.2's in v0.3.64) is reported "not in this ComfyUI" and checked instead by
  `graph_problems` against this server's object_info plus NEWER_NODES below; an accepted graph then runs and must
  fail at its first loader with the execution_error of an empty model file (the message tests/fakes/comfyui.py
  gives);
- compares tests/fakes/comfyui.py's node table with this server's object_info (input names, types, min/max/step);
- runs two model-free graphs end to end (LoadImage → ImageScale → SaveImage; two LoadImage → ImageBatch →
  CreateVideo → SaveVideo) and reads their outputs through `GET /view`.

NEWER_NODES are the definitions, as object_info shows them, of nodes newer than v0.3.64, read from
1696762169/ComfyUI (a fork of Comfy-Org/ComfyUI) @ 63781373ea5e2842646ddd66a8602515272c34ec:
`comfy_extras/nodes_flux.py` (Flux2Scheduler, EmptyFlux2LatentImage; V3 `io.Int.Input`s render as
`["INT", {default, min, max, step}]`) and `nodes.py` (CLIPLoader's `type` list, which gained "flux2").
One line per check; exits 1 on any failure.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import imageio_ffmpeg
from PIL import Image

from reelflow.providers.comfyui import graphs
from reelflow.providers.comfyui.client import ComfyClient, GraphFailed, GraphRefused
from reelflow.providers.comfyui.models import MODEL_FILES, model_files
from reelflow.providers.comfyui.object_info import graph_problems
from reelflow.schemas.requests import EditRequest, ImageRequest, UpscaleRequest, VideoRequest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fakes.comfyui import EMPTY_FILE_ERRORS, default_models, node_table  # noqa: E402

TEST_LORA = "reelflow-test-lora.safetensors"
MAX_RESOLUTION = 16384
NEWER_NODES: dict[str, dict[str, Any]] = {
    "Flux2Scheduler": {"input": {"required": {
        "steps": ["INT", {"default": 20, "min": 1, "max": 4096}],
        "width": ["INT", {"default": 1024, "min": 16, "max": MAX_RESOLUTION, "step": 1}],
        "height": ["INT", {"default": 1024, "min": 16, "max": MAX_RESOLUTION, "step": 1}]}},
        "output": ["SIGMAS"], "output_node": False},
    "EmptyFlux2LatentImage": {"input": {"required": {
        "width": ["INT", {"default": 1024, "min": 16, "max": MAX_RESOLUTION, "step": 16}],
        "height": ["INT", {"default": 1024, "min": 16, "max": MAX_RESOLUTION, "step": 16}],
        "batch_size": ["INT", {"default": 1, "min": 1, "max": 4096}]}},
        "output": ["LATENT"], "output_node": False},
}
NEWER_CLIP_TYPES = ["stable_diffusion", "stable_cascade", "sd3", "stable_audio", "mochi", "ltxv", "pixart", "cosmos",
                    "lumina2", "wan", "hidream", "chroma", "ace", "omnigen2", "qwen_image", "hunyuan_image", "flux2",
                    "ovis", "longcat_image", "cogvideox", "lens", "pixeldit", "ideogram4"]
failures: list[str] = []


def report(name: str, ok: bool, detail: str = "") -> None:
    """One line per check; a failure is remembered for the exit status."""
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
    if not ok:
        failures.append(name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def model_folder(root: Path) -> Path:
    """Empty files named like every model file (and a test LoRA), and the extra_model_paths yaml naming them."""
    for file in MODEL_FILES.values():
        (root / file.folder).mkdir(parents=True, exist_ok=True)
        (root / file.folder / file.name).touch()
    (root / "models/loras" / TEST_LORA).touch()
    keys = "\n".join(f"  {folder}: models/{folder}" for folder in ("unet", "clip", "vae", "loras", "upscale_models"))
    yaml = root / "extra_model_paths.yaml"
    yaml.write_text(f"reelflow:\n  base_path: {root}\n{keys}\n")
    return yaml


def start(comfy: Path, python: str, root: Path, port: int) -> subprocess.Popen[bytes]:
    """`main.py --cpu` on 127.0.0.1:port with its folders under `root`."""
    yaml = model_folder(root)
    for folder in ("input", "output", "temp"):
        (root / folder).mkdir(exist_ok=True)
    command = [python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
               "--extra-model-paths-config", str(yaml), "--input-directory", str(root / "input"),
               "--output-directory", str(root / "output"), "--temp-directory", str(root / "temp")]
    log = (root / "comfyui.log").open("wb")
    return subprocess.Popen(command, cwd=comfy, stdout=log, stderr=subprocess.STDOUT)


def wait_up(url: str, process: subprocess.Popen[bytes], deadline_s: float = 300.0) -> bool:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end and process.poll() is None:
        try:
            if httpx.get(f"{url}/system_stats", timeout=2.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    return False


def built_graphs(root: Path) -> dict[str, graphs.Graph]:
    """Every graph reelflow builds, at small sizes."""
    first, last = root / "first.png", root / "last.png"
    Image.new("RGB", (64, 48), (200, 40, 40)).save(first)
    Image.new("RGB", (64, 48), (40, 40, 200)).save(last)
    files = model_files({})
    image = ImageRequest(model="flux2", prompt="a ship at dawn", width=1000, height=560, seed=3)
    video = VideoRequest(model="wan", first=first, last=last, prompt="it sails", num_frames=17, fps=16, width=64,
                         height=48)
    return {
        "keyframe (FLUX.2)": graphs.keyframe_graph(image, files, [(TEST_LORA, 0.8)]),
        "previz (Z-Image)": graphs.previz_graph(image, files),
        "upscale": graphs.upscale_graph(UpscaleRequest(model="up", image=first, width=200, height=150), files),
        "video (WAN 2.2)": graphs.video_graph(video, files, [(TEST_LORA, 1.0)], [(TEST_LORA, 1.0)],
                                              graphs.WanSettings()),
        "angle (Qwen edit)": graphs.angle_graph(EditRequest(model="qwen", image=first, prompt="turn left",
                                                            references=(last,), width=96), files),
    }


def with_newer_nodes(info: dict[str, Any]) -> dict[str, Any]:
    """This server's object_info plus NEWER_NODES and the newer CLIPLoader type list."""
    merged = {**info, **NEWER_NODES}
    clip = merged["CLIPLoader"]["input"]["required"]
    merged["CLIPLoader"] = {**merged["CLIPLoader"], "input": {**merged["CLIPLoader"]["input"],
                                                               "required": {**clip, "type": [NEWER_CLIP_TYPES]}}}
    return merged


def check_graph(client: ComfyClient, name: str, graph: graphs.Graph) -> None:
    """Post one graph: accepted and failing at an empty model, or missing classes checked against newer ones."""
    for upload, path in graph.images.items():
        client.upload(path, upload)
    missing = sorted({node["class_type"] for node in graph.nodes.values()} - set(client.object_info()))
    try:
        prompt_id = client.queue(graph.nodes)
    except GraphRefused as error:
        if not missing or "does not exist" not in str(error):
            report(f"{name}: accepted", False, str(error))
            return
        problems = graph_problems(graph.nodes, with_newer_nodes(client.object_info()))
        report(f"{name}: not in this ComfyUI ({', '.join(missing)}: {error}); checked against newer definitions",
               not problems, "; ".join(problems))
        return
    report(f"{name}: accepted (node_errors empty)", True)
    try:
        client.wait(prompt_id)
        report(f"{name}: fails at an empty model", False, "it succeeded")
    except GraphFailed as error:
        expected = {" ".join(message.split()) or kind for kind, message in EMPTY_FILE_ERRORS.values()}
        report(f"{name}: fails at an empty model like the fake", any(str(error).endswith(e) for e in expected),
               str(error))


def check_fake_table(info: dict[str, Any]) -> None:
    """The fake's node table agrees with this server on input names, kinds and numeric limits."""
    differences = []
    for class_type, node in node_table(default_models(), []).items():
        if class_type not in info:
            continue
        real = info[class_type]
        for category in ("required", "optional"):
            ours, theirs = node["input"].get(category, {}), real["input"].get(category, {})
            if set(ours) != set(theirs):
                differences.append(f"{class_type} {category}: {sorted(ours)} != {sorted(theirs)}")
            for name in set(ours) & set(theirs):
                kind, real_kind = ours[name][0], theirs[name][0]
                if isinstance(kind, str) and kind != real_kind:
                    differences.append(f"{class_type}.{name}: {kind} != {real_kind}")
                limits = [{key: spec[1].get(key) for key in ("min", "max", "step")} if len(spec) > 1 else {}
                          for spec in (ours[name], theirs[name])]
                if kind in ("INT", "FLOAT") and limits[0] != limits[1]:
                    differences.append(f"{class_type}.{name}: {limits[0]} != {limits[1]}")
        if node["output"] != real["output"]:
            differences.append(f"{class_type} outputs: {node['output']} != {real['output']}")
    report("the fake's node table matches this ComfyUI", not differences, "; ".join(differences))


def run_end_to_end(client: ComfyClient, root: Path, name: str, nodes: dict[str, Any], output: str,
                   verify: Callable[[Path], str | None]) -> None:
    """Queue a model-free graph, wait, download its one file through /view and verify it."""
    try:
        outputs = client.wait(client.queue(nodes))
        [file] = client.output_files(outputs, output)
        path = client.download(file, root / "downloads" / file.filename)
        problem = verify(path)
        report(f"{name}: runs end to end", problem is None, problem or f"{file.subfolder}/{file.filename}")
    except Exception as error:  # noqa: BLE001 - one line per failed check
        report(f"{name}: runs end to end", False, f"{type(error).__name__}: {error}")


def png_is(size: tuple[int, int]) -> Callable[[Path], str | None]:
    def verify(path: Path) -> str | None:
        with Image.open(path) as image:
            return None if image.size == size else f"size {image.size}, expected {size}"
    return verify


def mp4_has(frames: int) -> Callable[[Path], str | None]:
    def verify(path: Path) -> str | None:
        reader = imageio_ffmpeg.read_frames(str(path))
        meta = next(reader)
        count = sum(1 for _ in reader)
        codec = meta.get("codec", "")
        ok = count == frames and path.suffix == ".mp4" and "h264" in codec
        return None if ok else f"{count} frames, codec {codec!r}, expected {frames} h264 frames"
    return verify


def model_free(client: ComfyClient, root: Path) -> None:
    """The two graphs that need no model: an image resize and a two-frame video."""
    a, b = root / "a.png", root / "b.png"
    Image.new("RGB", (64, 48), (250, 120, 0)).save(a)
    Image.new("RGB", (64, 48), (0, 120, 250)).save(b)
    names = [client.upload(path, graphs.upload_name(path)) for path in (a, b)]
    image = {"1": {"class_type": "LoadImage", "inputs": {"image": names[0]}},
             "2": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "lanczos",
                                                          "width": 96, "height": 80, "crop": "center"}},
             "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "reelflow/check"}}}
    run_end_to_end(client, root, "LoadImage → ImageScale → SaveImage", image, "3", png_is((96, 80)))
    video = {"1": {"class_type": "LoadImage", "inputs": {"image": names[0]}},
             "2": {"class_type": "LoadImage", "inputs": {"image": names[1]}},
             "3": {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["2", 0]}},
             "4": {"class_type": "CreateVideo", "inputs": {"images": ["3", 0], "fps": 8.0}},
             "5": {"class_type": "SaveVideo", "inputs": {"video": ["4", 0], "filename_prefix": "reelflow/check",
                                                         "format": "mp4", "codec": "h264"}}}
    run_end_to_end(client, root, "LoadImage ×2 → ImageBatch → CreateVideo → SaveVideo", video, "5", mp4_has(2))


@contextmanager
def real_comfyui(root: Path) -> Iterator[str | None]:
    """A ComfyUI from COMFYUI_DIR (run by COMFYUI_PYTHON) on a free loopback port with its folders under `root`: its
    URL, or None (said in one line) when it is not there or does not start; stopped afterwards."""
    comfy = Path(os.environ.get("COMFYUI_DIR", ""))
    if not (comfy / "main.py").is_file():
        report("ComfyUI checkout", False, "COMFYUI_DIR must name a ComfyUI checkout (a folder with main.py)")
        yield None
        return
    port = free_port()
    process = start(comfy, os.environ.get("COMFYUI_PYTHON") or "python3", root, port)
    url = f"http://127.0.0.1:{port}"
    try:
        if wait_up(url, process):
            yield url
        else:
            log = (root / "comfyui.log").read_text(errors="replace").splitlines()[-5:]
            report("ComfyUI starts", False, " | ".join(log))
            yield None
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="reelflow-comfyui-") as folder, real_comfyui(Path(folder)) as url:
        if url is None:
            return 1
        root = Path(folder)
        client = ComfyClient(url, poll_s=0.2, deadline_s=300.0, timeout_s=30.0)
        system = client.system_stats()["system"]
        report("ComfyUI starts", True, f"{system.get('comfyui_version')} on {url}")
        for name, graph in built_graphs(root).items():
            check_graph(client, name, graph)
        check_fake_table(client.object_info())
        model_free(client, root)
        client.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
