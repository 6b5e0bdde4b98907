"""The GPU path's model ids (what a ComfyUI graph makes, as the ledger and cache keys name it) and how long each
operation holds a GPU, for estimates before the ledger has measured any."""

from __future__ import annotations

FLUX2_DEV = "comfyui/flux2-dev"  # keyframes and strips, with FLUX.2 character LoRAs
Z_IMAGE_TURBO = "comfyui/z-image-turbo"  # previz
UPSCALE = "comfyui/upscale"  # an ESRGAN-style model, then resampled to the exact size
WAN_FLF = "comfyui/wan2.2-flf"  # WAN 2.2 14B first-last-frame, high- and low-noise experts
QWEN_EDIT = "comfyui/qwen-image-edit"  # Qwen-Image-Edit-2509: the candidates' angle edits

# GPU seconds of one operation, at the reference's size and settings. WAN: ComfyUI's WAN 2.2 14B FLF template notes
# "RTX 4090D, 640x640, 81 frames: about 536 s" at 20 steps (workflow_templates video_wan2_2_14B_flf2v.json @ 57624f4b),
# scaled by steps and by frames x pixels. The image rows are reelflow's assumption for a 24-48 GB GPU (no published
# figure): the ledger's own measurements replace them once a project has run any.
GPU_SECONDS: dict[str, float] = {FLUX2_DEV: 40.0, Z_IMAGE_TURBO: 8.0, UPSCALE: 10.0, WAN_FLF: 536.0, QWEN_EDIT: 20.0}
WAN_REFERENCE = {"steps": 20, "frames": 81, "pixels": 640 * 640}
POD_BOOT_S = 300.0  # a pod's start-up (image pull, ComfyUI up) a budget holds before creating one: RunPod's docs say
# "may take a few minutes", the ComfyUI pod tutorial "up to 30 minutes" on first boot (gpu-path.md A2)


def gpu_seconds(model: str, *, steps: int | None = None, frames: int | None = None, pixels: int | None = None) -> float:
    """The table's seconds for one operation of `model`; WAN's scaled by steps and by frames x pixels."""
    seconds = GPU_SECONDS.get(model, 60.0)
    if model == WAN_FLF:
        seconds *= (steps or WAN_REFERENCE["steps"]) / WAN_REFERENCE["steps"]
        seconds *= ((frames or WAN_REFERENCE["frames"]) * (pixels or WAN_REFERENCE["pixels"])
                    / (WAN_REFERENCE["frames"] * WAN_REFERENCE["pixels"]))
    return seconds
