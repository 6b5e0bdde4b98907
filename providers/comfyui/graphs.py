"""Pure builders of ComfyUI API-format graphs, one per stage (/work/shared/reference/gpu-path.md E1-E5).

Each returns a `Graph`: the nodes to POST as `prompt`, the local files its LoadImage nodes name (uploaded under
content-addressed names), the id of the node whose output files are the result, and whether that is an image or
a video. Latent and video sizes are built at the request's size rounded UP to a multiple of 16 (the `step` of
EmptyFlux2LatentImage, EmptySD3LatentImage and WanFirstLastFrameToVideo); the provider crops or resizes the result.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from reelflow.providers.comfyui.models import ModelFile
from reelflow.schemas.refs import FLUX2_DEV_MAX_REFERENCES
from reelflow.schemas.requests import EditRequest, ImageRequest, UpscaleRequest, VideoRequest

Nodes = dict[str, dict[str, Any]]
Link = list[Any]
REFERENCE_PIXELS = 1024 * 1024  # a reference image is encoded at about one megapixel, its aspect kept


@dataclass
class Graph:
    """An API-format graph with the images it uploads and the node whose files are the result."""

    nodes: Nodes
    images: dict[str, Path]
    output: str
    kind: Literal["image", "video"]


@dataclass(frozen=True)
class WanSettings:
    """WAN 2.2 sampling without the lightx2v LoRA (gpu-path.md E1 gives 20 steps, cfg 4, shift 8 as the template's)."""

    steps: int = 30
    cfg: float = 6.0
    shift: float = 5.0


@dataclass
class _Builder:
    """Adds nodes with ids "1", "2", … and returns links to their outputs."""

    nodes: Nodes = field(default_factory=dict)
    images: dict[str, Path] = field(default_factory=dict)

    def add(self, class_type: str, **inputs: Any) -> str:
        node_id = str(len(self.nodes) + 1)
        self.nodes[node_id] = {"class_type": class_type, "inputs": inputs}
        return node_id

    def load_image(self, path: Path) -> str:
        name = upload_name(path)
        self.images[name] = path
        return self.add("LoadImage", image=name)

    def loras(self, model: str, loras: Iterable[tuple[str, float]]) -> str:
        for name, strength in loras:
            model = self.add("LoraLoaderModelOnly", model=out(model), lora_name=name, strength_model=float(strength))
        return model

    def graph(self, output: str, kind: Literal["image", "video"]) -> Graph:
        return Graph(self.nodes, self.images, output, kind)


def out(node_id: str, slot: int = 0) -> Link:
    """A link to output `slot` of node `node_id`."""
    return [node_id, slot]


def up16(value: int) -> int:
    """`value` rounded up to a multiple of 16."""
    return -(-value // 16) * 16


def upload_name(path: Path) -> str:
    """The content-addressed name a local file is uploaded under: `reelflow-<sha256[:16]><ext>`."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return f"reelflow-{digest}{path.suffix.lower()}"


def wan_loras(loras: Iterable[tuple[str, float, str | None]]) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """(file, strength, transformer) triples split onto the high- and low-noise experts; None means both."""
    high = [(name, strength) for name, strength, expert in loras if expert in ("high", "both", None)]
    low = [(name, strength) for name, strength, expert in loras if expert in ("low", "both", None)]
    return high, low


def _loaders(b: _Builder, files: dict[str, ModelFile], prefix: str, clip_type: str) -> tuple[str, str, str]:
    unet = b.add("UNETLoader", unet_name=files[f"{prefix}_unet"].name, weight_dtype="default")
    clip = b.add("CLIPLoader", clip_name=files[f"{prefix}_clip"].name, type=clip_type, device="default")
    vae = b.add("VAELoader", vae_name=files[f"{prefix}_vae"].name)
    return unet, clip, vae


def reference_size(path: Path) -> tuple[int, int]:
    """The size a reference image is encoded at: about REFERENCE_PIXELS with its aspect, sides multiples of 16."""
    with Image.open(path) as picture:
        width, height = picture.size
    factor = (REFERENCE_PIXELS / (width * height)) ** 0.5
    return max(16, round(width * factor / 16) * 16), max(16, round(height * factor / 16) * 16)


def keyframe_graph(request: ImageRequest, files: dict[str, ModelFile], loras: list[tuple[str, float]]) -> Graph:
    """FLUX.2 [dev] text to image with one LoraLoaderModelOnly per character LoRA (gpu-path.md E3). Each reference
    image (costume, set) is scaled to about a megapixel, VAE-encoded and chained onto the prompt's conditioning with
    ReferenceLatent, FLUX.2's native multi-reference (ComfyUI `comfy_extras/nodes_edit_model.py`: "you can chain
    multiple to set multiple reference images")."""
    if len(request.references) > FLUX2_DEV_MAX_REFERENCES:
        raise ValueError(f"comfyui: FLUX.2 [dev] takes at most {FLUX2_DEV_MAX_REFERENCES} reference images, got "
                         f"{len(request.references)}")
    b = _Builder()
    unet, clip, vae = _loaders(b, files, "flux2", "flux2")
    model = b.loras(unet, loras)
    text = b.add("CLIPTextEncode", clip=out(clip), text=request.prompt)
    for path in request.references:
        width, height = reference_size(path)
        scaled = b.add("ImageScale", image=out(b.load_image(path)), upscale_method="lanczos", width=width,
                       height=height, crop="disabled")
        text = b.add("ReferenceLatent", conditioning=out(text), latent=out(b.add("VAEEncode", pixels=out(scaled),
                                                                                  vae=out(vae))))
    guided = b.add("FluxGuidance", conditioning=out(text), guidance=4.0)
    guider = b.add("BasicGuider", model=out(model), conditioning=out(guided))
    noise = b.add("RandomNoise", noise_seed=request.seed)
    sampler = b.add("KSamplerSelect", sampler_name="euler")
    width, height = up16(request.width), up16(request.height)
    sigmas = b.add("Flux2Scheduler", steps=request.steps, width=width, height=height)
    latent = b.add("EmptyFlux2LatentImage", width=width, height=height, batch_size=1)
    sampled = b.add("SamplerCustomAdvanced", noise=out(noise), guider=out(guider), sampler=out(sampler),
                    sigmas=out(sigmas), latent_image=out(latent))
    decoded = b.add("VAEDecode", samples=out(sampled), vae=out(vae))
    return b.graph(b.add("SaveImage", images=out(decoded), filename_prefix="reelflow/keyframe"), "image")


def previz_graph(request: ImageRequest, files: dict[str, ModelFile]) -> Graph:
    """Z-Image Turbo text to image at no more than its 8 steps (gpu-path.md E2)."""
    b = _Builder()
    unet, clip, vae = _loaders(b, files, "zimage", "lumina2")
    model = b.add("ModelSamplingAuraFlow", model=out(unet), shift=3.0)
    positive = b.add("CLIPTextEncode", clip=out(clip), text=request.prompt)
    negative = b.add("ConditioningZeroOut", conditioning=out(positive))
    latent = b.add("EmptySD3LatentImage", width=up16(request.width), height=up16(request.height), batch_size=1)
    sampled = b.add("KSampler", model=out(model), positive=out(positive), negative=out(negative),
                    latent_image=out(latent), seed=request.seed, steps=min(request.steps, 8), cfg=1.0,
                    sampler_name="res_multistep", scheduler="simple", denoise=1.0)
    decoded = b.add("VAEDecode", samples=out(sampled), vae=out(vae))
    return b.graph(b.add("SaveImage", images=out(decoded), filename_prefix="reelflow/previz"), "image")


def upscale_graph(request: UpscaleRequest, files: dict[str, ModelFile]) -> Graph:
    """Model upscale, then a lanczos resize to exactly the requested size (gpu-path.md E5)."""
    b = _Builder()
    image = b.load_image(request.image)
    model = b.add("UpscaleModelLoader", model_name=files["upscale"].name)
    upscaled = b.add("ImageUpscaleWithModel", upscale_model=out(model), image=out(image))
    scaled = b.add("ImageScale", image=out(upscaled), upscale_method="lanczos", width=request.width,
                   height=request.height, crop="center")
    return b.graph(b.add("SaveImage", images=out(scaled), filename_prefix="reelflow/upscale"), "image")


def video_graph(request: VideoRequest, files: dict[str, ModelFile], high: list[tuple[str, float]],
                low: list[tuple[str, float]], wan: WanSettings) -> Graph:
    """WAN 2.2 14B first-last-frame to video, two experts, without the lightx2v LoRA (gpu-path.md E1)."""
    b = _Builder()
    experts = []
    for role, loras in (("wan_high", high), ("wan_low", low)):
        unet = b.add("UNETLoader", unet_name=files[role].name, weight_dtype="default")
        experts.append(b.add("ModelSamplingSD3", model=out(b.loras(unet, loras)), shift=float(wan.shift)))
    clip = b.add("CLIPLoader", clip_name=files["wan_clip"].name, type="wan", device="default")
    positive = b.add("CLIPTextEncode", clip=out(clip), text=request.prompt)
    negative = b.add("CLIPTextEncode", clip=out(clip), text=request.negative_prompt or "")
    vae = b.add("VAELoader", vae_name=files["wan_vae"].name)
    first, last = b.load_image(request.first), b.load_image(request.last)
    video = b.add("WanFirstLastFrameToVideo", positive=out(positive), negative=out(negative), vae=out(vae),
                  start_image=out(first), end_image=out(last), width=up16(request.width),
                  height=up16(request.height), length=request.num_frames, batch_size=1)
    split = wan.steps // 2
    common = {"positive": out(video, 0), "negative": out(video, 1), "steps": wan.steps, "cfg": float(wan.cfg),
              "sampler_name": "euler", "scheduler": "simple"}
    noisy = b.add("KSamplerAdvanced", model=out(experts[0]), latent_image=out(video, 2), add_noise="enable",
                  noise_seed=request.seed, start_at_step=0, end_at_step=split, return_with_leftover_noise="enable",
                  **common)
    clean = b.add("KSamplerAdvanced", model=out(experts[1]), latent_image=out(noisy), add_noise="disable",
                  noise_seed=request.seed, start_at_step=split, end_at_step=10000,
                  return_with_leftover_noise="disable", **common)
    frames = b.add("VAEDecode", samples=out(clean), vae=out(vae))
    created = b.add("CreateVideo", images=out(frames), fps=float(request.fps))
    saved = b.add("SaveVideo", video=out(created), filename_prefix="reelflow/video", format="mp4", codec="h264")
    return b.graph(saved, "video")


def angle_graph(request: EditRequest, files: dict[str, ModelFile]) -> Graph:
    """Qwen-Image-Edit-2509 with the Lightning and multiple-angles LoRAs; references go in as image2/image3 (E4)."""
    b = _Builder()
    unet, clip, vae = _loaders(b, files, "qwen", "qwen_image")
    model = b.loras(unet, [(files["qwen_lightning"].name, 1.0), (files["qwen_angles"].name, 1.0)])
    model = b.add("CFGNorm", model=out(b.add("ModelSamplingAuraFlow", model=out(model), shift=3.0)), strength=1.0)
    if len(request.references) > 2:
        raise ValueError(f"comfyui: TextEncodeQwenImageEditPlus takes at most 2 references, got {len(request.references)}")
    source = b.load_image(request.image)
    images = {"image1": out(source)}
    images.update({f"image{index}": out(b.load_image(path)) for index, path in enumerate(request.references, 2)})
    positive = b.add("TextEncodeQwenImageEditPlus", clip=out(clip), vae=out(vae), prompt=request.prompt, **images)
    negative = b.add("TextEncodeQwenImageEditPlus", clip=out(clip), vae=out(vae), prompt="", image1=out(source))
    if request.width or request.height:
        with Image.open(request.image) as picture:
            width, height = request.output_size(picture.size)
        latent = b.add("EmptySD3LatentImage", width=up16(width), height=up16(height), batch_size=1)
    else:
        latent = b.add("VAEEncode", pixels=out(source), vae=out(vae))
    sampled = b.add("KSampler", model=out(model), positive=out(positive), negative=out(negative),
                    latent_image=out(latent), seed=request.seed, steps=4, cfg=1.0, sampler_name="euler",
                    scheduler="simple", denoise=1.0)
    decoded = b.add("VAEDecode", samples=out(sampled), vae=out(vae))
    return b.graph(b.add("SaveImage", images=out(decoded), filename_prefix="reelflow/angle"), "image")
