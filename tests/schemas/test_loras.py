"""The LoRA registry picks adapters by the base model of the endpoint they go to; WAN adapters keep their expert."""

from __future__ import annotations

from pathlib import Path

from reelflow.schemas import gpu
from reelflow.schemas.loras import LORA_BASES, LoraRegistry
from reelflow.schemas.wire.fal import FLUX2_LORA, SEEDVR_UPSCALE, WAN_FLF, Z_IMAGE_TURBO, Z_IMAGE_TURBO_LORA

REGISTRY = LoraRegistry.model_validate({"characters": {
    "ANA": [
        {"base_model": "flux-2", "path": "https://w/ana-flux2.safetensors", "trigger": "ana_flux"},
        {"base_model": "z-image", "path": "https://w/ana-zimage.safetensors", "trigger": "ana_z"},
        {"base_model": "wan-2.2", "path": "https://w/ana-wan-high.safetensors", "noise": "high"},
        {"base_model": "wan-2.2", "path": "https://w/ana-wan-low.safetensors", "noise": "low"},
    ],
    "BO": [{"base_model": "flux-2", "path": "https://w/bo-flux2.safetensors", "scale": 0.8}],
}})


def test_each_endpoint_gets_the_adapters_of_its_base_model() -> None:
    assert [lora.path for lora in REGISTRY.for_model(["ANA"], FLUX2_LORA)] == ["https://w/ana-flux2.safetensors"]
    for z_image in (Z_IMAGE_TURBO, Z_IMAGE_TURBO_LORA):
        assert [lora.trigger for lora in REGISTRY.for_model(["ANA"], z_image)] == ["ana_z"]
    assert REGISTRY.for_model(["ANA"], SEEDVR_UPSCALE) == (), "an endpoint with no LoRA base takes none"
    assert set(LORA_BASES) == {FLUX2_LORA, Z_IMAGE_TURBO, Z_IMAGE_TURBO_LORA, WAN_FLF, gpu.FLUX2_DEV, gpu.Z_IMAGE_TURBO,
                               gpu.WAN_FLF}


def test_wan_adapters_keep_their_noise_expert_and_characters_share_the_strength() -> None:
    wan = REGISTRY.for_model(["ANA"], WAN_FLF)
    assert [(lora.path.rsplit("/", 1)[1], lora.transformer) for lora in wan] == [
        ("ana-wan-high.safetensors", "high"), ("ana-wan-low.safetensors", "low")]
    both = REGISTRY.for_model(["ANA", "BO"], FLUX2_LORA)
    assert [(lora.character, lora.scale, lora.transformer) for lora in both] == [("ANA", 0.5, None), ("BO", 0.4, None)]


def test_an_adapter_is_keyed_by_its_weights_and_carries_where_to_find_them() -> None:
    registry = LoraRegistry.model_validate({"characters": {"ANA": [
        {"base_model": "flux-2", "path": "https://w/ana.safetensors", "file": "visual/loras/ANA/ana.safetensors",
         "sha256": "a" * 64, "trigger": "ana_flux", "trained_at": "2026-01-02T03:04:05+00:00"},
        {"base_model": "wan-2.2", "path": "visual/loras/ANA/high.safetensors", "sha256": "b" * 64, "noise": "high",
         "url": "https://w/high.safetensors", "url_at": "2026-02-01T00:00:00+00:00"},
    ]}})
    root = Path("/projects/tst")
    [flux] = registry.for_model(["ANA"], FLUX2_LORA, root=root)
    assert (flux.file, flux.project, flux.url, flux.url_at) == (
        root / "visual/loras/ANA/ana.safetensors", root, None, "2026-01-02T03:04:05+00:00"), "the URL is as old as training"
    assert flux.model_dump(mode="json") == {"sha256": "a" * 64, "scale": 1.0, "trigger": "ana_flux", "character": "ANA",
                                            "transformer": None}, "no path, URL or file in what keys a request"
    [wan] = registry.for_model(["ANA"], WAN_FLF, root=root)
    assert (wan.file, wan.url, wan.url_at) == (root / "visual/loras/ANA/high.safetensors", "https://w/high.safetensors",
                                               "2026-02-01T00:00:00+00:00")
    assert REGISTRY.for_model(["BO"], FLUX2_LORA)[0].model_dump(mode="json") == {
        "path": "https://w/bo-flux2.safetensors", "scale": 0.8, "trigger": None, "character": "BO", "transformer": None,
    }, "weights of unknown content are keyed by their path, as before"
