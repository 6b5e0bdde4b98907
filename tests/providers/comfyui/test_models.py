"""The model-file table and project overrides."""

from __future__ import annotations

import pytest

from reelflow.providers.comfyui.models import MODEL_FILES, model_files


def test_every_role_names_a_loader_and_a_volume_folder() -> None:
    folders = {"UNETLoader": "models/unet", "CLIPLoader": "models/clip", "VAELoader": "models/vae",
               "LoraLoaderModelOnly": "models/loras", "UpscaleModelLoader": "models/upscale_models"}
    assert len(MODEL_FILES) == 16
    for file in MODEL_FILES.values():
        assert folders[file.loader_node] == file.folder


def test_an_override_renames_only_its_role() -> None:
    files = model_files({"wan_high": "mine.safetensors"})
    assert files["wan_high"].name == "mine.safetensors"
    assert files["wan_high"].folder == "models/unet"
    assert files["wan_low"] == MODEL_FILES["wan_low"]


def test_an_unknown_role_is_named_with_the_roles() -> None:
    with pytest.raises(ValueError, match="wan_middle.*flux2_unet"):
        model_files({"wan_middle": "x.safetensors"})
