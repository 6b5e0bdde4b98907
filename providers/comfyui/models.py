"""The model files each ComfyUI graph loads: role → file, network-volume folder and the loader node that reads it.

File names and their Hugging Face sources come from /work/shared/reference/gpu-path.md E1-E5 (ComfyUI workflow
templates). Folders are worker-comfyui's extra_model_paths keys (gpu-path.md C): UNETLoader reads `models/unet`,
CLIPLoader `models/clip`, VAELoader `models/vae`, LoraLoaderModelOnly `models/loras`, UpscaleModelLoader
`models/upscale_models`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class ModelFile:
    """One model file: its name, the volume folder it lives in, and the loader node input that names it."""

    name: str
    folder: str
    loader_node: str
    loader_input: str
    source: str


def _unet(name: str, source: str) -> ModelFile:
    return ModelFile(name, "models/unet", "UNETLoader", "unet_name", source)


def _clip(name: str, source: str) -> ModelFile:
    return ModelFile(name, "models/clip", "CLIPLoader", "clip_name", source)


def _vae(name: str, source: str) -> ModelFile:
    return ModelFile(name, "models/vae", "VAELoader", "vae_name", source)


def _lora(name: str, source: str) -> ModelFile:
    return ModelFile(name, "models/loras", "LoraLoaderModelOnly", "lora_name", source)


WAN = "Comfy-Org/Wan_2.2_ComfyUI_Repackaged"
MODEL_FILES: dict[str, ModelFile] = {
    "flux2_unet": _unet("flux2_dev_fp8mixed.safetensors", "Comfy-Org/flux2-dev split_files/diffusion_models"),
    "flux2_clip": _clip("mistral_3_small_flux2_bf16.safetensors", "Comfy-Org/flux2-dev split_files/text_encoders"),
    "flux2_vae": _vae("flux2-vae.safetensors", "Comfy-Org/flux2-dev split_files/vae"),
    "zimage_unet": _unet("z_image_turbo_bf16.safetensors", "Comfy-Org/z_image_turbo split_files/diffusion_models"),
    "zimage_clip": _clip("qwen_3_4b.safetensors", "Comfy-Org/z_image_turbo split_files/text_encoders"),
    "zimage_vae": _vae("ae.safetensors", "Comfy-Org/z_image_turbo split_files/vae"),
    "wan_high": _unet("wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors", f"{WAN} split_files/diffusion_models"),
    "wan_low": _unet("wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors", f"{WAN} split_files/diffusion_models"),
    "wan_clip": _clip("umt5_xxl_fp8_e4m3fn_scaled.safetensors",
                      "Comfy-Org/Wan_2.1_ComfyUI_repackaged split_files/text_encoders"),
    "wan_vae": _vae("wan_2.1_vae.safetensors", f"{WAN} split_files/vae"),
    "qwen_unet": _unet("qwen_image_edit_2509_fp8_e4m3fn.safetensors",
                       "Comfy-Org/Qwen-Image-Edit_ComfyUI split_files/diffusion_models"),
    "qwen_clip": _clip("qwen_2.5_vl_7b_fp8_scaled.safetensors", "Comfy-Org/Qwen-Image_ComfyUI split_files/text_encoders"),
    "qwen_vae": _vae("qwen_image_vae.safetensors", "Comfy-Org/Qwen-Image_ComfyUI split_files/vae"),
    "qwen_lightning": _lora("Qwen-Image-Edit-2509-Lightning-4steps-V1.0-bf16.safetensors",
                            "lightx2v/Qwen-Image-Lightning Qwen-Image-Edit-2509/"),
    "qwen_angles": _lora("镜头转换.safetensors", "dx8152/Qwen-Edit-2509-Multiple-angles"),
    # gpu-path.md E5 confirms no upscale model: this one is reelflow's choice (spandrel loads ESRGAN .pth files).
    "upscale": ModelFile("RealESRGAN_x4plus.pth", "models/upscale_models", "UpscaleModelLoader", "model_name",
                         "xinntao/Real-ESRGAN release v0.1.0"),
}


def model_files(overrides: dict[str, str] | None = None) -> dict[str, ModelFile]:
    """MODEL_FILES with project.json's `comfyui.models` ({role: file name}) applied; an unknown role is a ValueError."""
    unknown = sorted(set(overrides or {}) - set(MODEL_FILES))
    if unknown:
        raise ValueError(f"comfyui: unknown model role(s) {', '.join(unknown)}; the roles are: {', '.join(MODEL_FILES)}")
    return {role: replace(file, name=(overrides or {}).get(role, file.name)) for role, file in MODEL_FILES.items()}
