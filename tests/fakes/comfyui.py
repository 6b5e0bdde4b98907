"""A loopback ComfyUI: the HTTP API of ComfyUI v0.3.64's `server.py` on 127.0.0.1, validating like `execution.py`.

Read from the ComfyUI mirror (Comfy-Org/ComfyUI @ a125cd84, gpu-path.md D):

- every route answers with and without `/api`, below an optional path `prefix` (a proxy's);
- `GET /object_info[/Class]` from NODES, a table of every class reelflow's graph builders use (the shapes real
  v0.3.64 answers: legacy `[[choices]]` combos and V3 `["COMBO", {"options"}]` ones), its model combos listing the
  files in `models` ({folder: names}); FLUX.2's nodes and CLIPLoader type `flux2` come from a newer ComfyUI
  (1696762169/ComfyUI @ 63781373, a fork of Comfy-Org/ComfyUI);
- `POST /prompt` validates like `validate_prompt`: unknown class → 400 `invalid_prompt` with empty node_errors;
  no output node → `prompt_no_outputs`; per node `required_input_missing`, `bad_linked_input`,
  `return_type_mismatch`, `invalid_input_type`, `value_smaller_than_min` / `value_bigger_than_max`,
  `value_not_in_list`, and LoadImage's `custom_validation_failed` "Invalid image file"; like ComfyUI, never `step`;
- a queued prompt runs on one worker for `run_s`, then writes real files: a PNG per SaveImage, an h264 mp4 per
  SaveVideo (frames = WanFirstLastFrameToVideo `length` or the batch, blended from the LoadImage inputs) listed under
  `images` with `animated: [true]`; a loader naming a file in `empty_models` fails with the execution_error real
  ComfyUI gives for an empty file (measured on v0.3.64: SafetensorError "Error while deserializing header: header
  too small" for .safetensors, EOFError with an empty message for .pth);
- `GET /history/{id}` is `{}` until done; `GET /queue`, `POST /interrupt` (only the running prompt), `POST /queue`
  delete, `POST /upload/image` (multipart), `GET /view`, `GET /system_stats`;
- faults: `fail_next` (statuses answered to the next requests), `prompt_delay_s` (the /prompt answer is late);
- records `prompts`, `uploads`, `interrupts`, `requests` (method, path, headers, time); `forget()` is a restart.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import sys
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import imageio_ffmpeg
import numpy as np
from PIL import Image

from reelflow.providers.comfyui.models import MODEL_FILES

MAX = 16384
SEED_MAX = 0xFFFFFFFFFFFFFFFF
SAMPLERS = ["euler", "euler_ancestral", "heun", "dpmpp_2m", "dpmpp_2m_sde", "res_multistep", "lcm", "uni_pc"]
SCHEDULERS = ["simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal"]
CLIP_TYPES = ["stable_diffusion", "stable_cascade", "sd3", "stable_audio", "mochi", "ltxv", "pixart", "cosmos",
              "lumina2", "wan", "hidream", "chroma", "ace", "omnigen2", "qwen_image", "hunyuan_image", "flux2"]
LOADERS = {"UNETLoader": ("unet_name", "unet"), "CLIPLoader": ("clip_name", "clip"), "VAELoader": ("vae_name", "vae"),
           "LoraLoaderModelOnly": ("lora_name", "loras"), "UpscaleModelLoader": ("model_name", "upscale_models")}
EMPTY_FILE_ERRORS = {
    ".safetensors": ("safetensors._safetensors_rust.SafetensorError", "Error while deserializing header: header too small\n"),
    ".pth": ("EOFError", "\n"),
}


def _int(default: int, low: int, high: int, step: int | None = None) -> list[Any]:
    options = {"default": default, "min": low, "max": high}
    return ["INT", options | ({"step": step} if step else {})]


def _float(default: float, low: float, high: float, step: float) -> list[Any]:
    return ["FLOAT", {"default": default, "min": low, "max": high, "step": step}]


def _node(required: dict[str, Any], outputs: list[str], optional: dict[str, Any] | None = None,
          output_node: bool = False) -> dict[str, Any]:
    inputs = {"required": required} | ({"optional": optional} if optional else {})
    return {"input": inputs, "output": outputs, "output_node": output_node}


def node_table(models: dict[str, list[str]], inputs: list[str]) -> dict[str, dict[str, Any]]:
    """Every node class the builders use, as `/object_info` shows it, with these model and input files."""
    string = ["STRING", {"multiline": True, "dynamicPrompts": True}]
    size16 = {"width": _int(1024, 16, MAX, 16), "height": _int(1024, 16, MAX, 16), "batch_size": _int(1, 1, 4096)}
    sampling = {"steps": _int(20, 1, 10000), "cfg": _float(8.0, 0.0, 100.0, 0.1), "sampler_name": [SAMPLERS],
                "scheduler": [SCHEDULERS], "positive": ["CONDITIONING"], "negative": ["CONDITIONING"],
                "latent_image": ["LATENT"]}
    shift = {"model": ["MODEL"], "shift": _float(3.0, 0.0, 100.0, 0.01)}
    return {
        "UNETLoader": _node({"unet_name": [models.get("unet", [])],
                             "weight_dtype": [["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"]]}, ["MODEL"]),
        "CLIPLoader": _node({"clip_name": [models.get("clip", [])], "type": [CLIP_TYPES]}, ["CLIP"],
                            {"device": [["default", "cpu"], {"advanced": True}]}),
        "VAELoader": _node({"vae_name": [[*models.get("vae", []), "pixel_space"]]}, ["VAE"]),
        "LoraLoaderModelOnly": _node({"model": ["MODEL"], "lora_name": [models.get("loras", [])],
                                      "strength_model": _float(1.0, -100.0, 100.0, 0.01)}, ["MODEL"]),
        "UpscaleModelLoader": _node({"model_name": ["COMBO", {"options": models.get("upscale_models", [])}]},
                                    ["UPSCALE_MODEL"]),
        "ImageUpscaleWithModel": _node({"upscale_model": ["UPSCALE_MODEL"], "image": ["IMAGE"]}, ["IMAGE"]),
        "LoadImage": _node({"image": [sorted(inputs), {"image_upload": True}]}, ["IMAGE", "MASK"]),
        "ImageScale": _node({"image": ["IMAGE"], "upscale_method": [["nearest-exact", "bilinear", "area", "bicubic",
                                                                     "lanczos"]],
                             "width": _int(512, 0, MAX, 1), "height": _int(512, 0, MAX, 1),
                             "crop": [["disabled", "center"]]}, ["IMAGE"]),
        "ImageBatch": _node({"image1": ["IMAGE"], "image2": ["IMAGE"]}, ["IMAGE"]),
        "SaveImage": _node({"images": ["IMAGE"], "filename_prefix": ["STRING", {"default": "ComfyUI"}]}, [],
                           output_node=True),
        "CLIPTextEncode": _node({"text": string, "clip": ["CLIP"]}, ["CONDITIONING"]),
        "FluxGuidance": _node({"conditioning": ["CONDITIONING"], "guidance": _float(3.5, 0.0, 100.0, 0.1)},
                              ["CONDITIONING"]),
        "BasicGuider": _node({"model": ["MODEL"], "conditioning": ["CONDITIONING"]}, ["GUIDER"]),
        "RandomNoise": _node({"noise_seed": _int(0, 0, SEED_MAX)}, ["NOISE"]),
        "KSamplerSelect": _node({"sampler_name": [SAMPLERS]}, ["SAMPLER"]),
        "Flux2Scheduler": _node({"steps": _int(20, 1, 4096), "width": _int(1024, 16, MAX, 1),
                                 "height": _int(1024, 16, MAX, 1)}, ["SIGMAS"]),
        "EmptyFlux2LatentImage": _node(size16, ["LATENT"]),
        "SamplerCustomAdvanced": _node({"noise": ["NOISE"], "guider": ["GUIDER"], "sampler": ["SAMPLER"],
                                        "sigmas": ["SIGMAS"], "latent_image": ["LATENT"]}, ["LATENT", "LATENT"]),
        "VAEDecode": _node({"samples": ["LATENT"], "vae": ["VAE"]}, ["IMAGE"]),
        "VAEEncode": _node({"pixels": ["IMAGE"], "vae": ["VAE"]}, ["LATENT"]),
        "ModelSamplingAuraFlow": _node(shift, ["MODEL"]),
        "ModelSamplingSD3": _node(shift, ["MODEL"]),
        "ConditioningZeroOut": _node({"conditioning": ["CONDITIONING"]}, ["CONDITIONING"]),
        "EmptySD3LatentImage": _node(size16, ["LATENT"]),
        "KSampler": _node({"model": ["MODEL"], "seed": _int(0, 0, SEED_MAX), **sampling,
                           "denoise": _float(1.0, 0.0, 1.0, 0.01)}, ["LATENT"]),
        "KSamplerAdvanced": _node({"model": ["MODEL"], "add_noise": [["enable", "disable"]],
                                   "noise_seed": _int(0, 0, SEED_MAX), **sampling,
                                   "start_at_step": _int(0, 0, 10000), "end_at_step": _int(10000, 0, 10000),
                                   "return_with_leftover_noise": [["disable", "enable"]]}, ["LATENT"]),
        # comfy_extras/nodes_edit_model.py (comfyanonymous/ComfyUI @ 7fc298d0): a V3 node, chained per reference
        "ReferenceLatent": _node({"conditioning": ["CONDITIONING", {}]}, ["CONDITIONING"], {"latent": ["LATENT", {}]}),
        "CFGNorm": _node({"model": ["MODEL", {}], "strength": _float(1.0, 0.0, 100.0, 0.01)}, ["MODEL"]),
        "TextEncodeQwenImageEditPlus": _node({"clip": ["CLIP", {}], "prompt": string}, ["CONDITIONING"],
                                             {"vae": ["VAE", {}], "image1": ["IMAGE", {}], "image2": ["IMAGE", {}],
                                              "image3": ["IMAGE", {}]}),
        "WanFirstLastFrameToVideo": _node({"positive": ["CONDITIONING", {}], "negative": ["CONDITIONING", {}],
                                           "vae": ["VAE", {}], "width": _int(832, 16, MAX, 16),
                                           "height": _int(480, 16, MAX, 16), "length": _int(81, 1, MAX, 4),
                                           "batch_size": _int(1, 1, 4096)},
                                          ["CONDITIONING", "CONDITIONING", "LATENT"],
                                          {"clip_vision_start_image": ["CLIP_VISION_OUTPUT", {}],
                                           "clip_vision_end_image": ["CLIP_VISION_OUTPUT", {}],
                                           "start_image": ["IMAGE", {}], "end_image": ["IMAGE", {}]}),
        "CreateVideo": _node({"images": ["IMAGE"], "fps": _float(30.0, 1.0, 120.0, 1.0)}, ["VIDEO"],
                             {"audio": ["AUDIO"]}),
        "SaveVideo": _node({"video": ["VIDEO"], "filename_prefix": ["STRING", {"default": "video/ComfyUI"}],
                            "format": ["COMBO", {"default": "auto", "options": ["auto", "mp4"]}],
                            "codec": ["COMBO", {"default": "auto", "options": ["auto", "h264"]}]}, [],
                           output_node=True),
    }


def default_models() -> dict[str, list[str]]:
    """Every file in MODEL_FILES by folder (`unet`, `clip`, …)."""
    models: dict[str, list[str]] = {}
    for file in MODEL_FILES.values():
        models.setdefault(file.folder.removeprefix("models/"), []).append(file.name)
    return models


def _error(kind: str, message: str, details: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": extra or {}}


class _Interrupted(Exception):
    pass


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up on its answer (a killed render, a timeout) is no error of the server's."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeComfyUI:
    """A started loopback ComfyUI; use as a context manager or call `close()`."""

    def __init__(self, root: Path, *, models: dict[str, list[str]] | None = None, empty_models: set[str] | None = None,
                 run_s: float = 0.05, prefix: str = "") -> None:
        self.root = root
        self.models = default_models() if models is None else models
        self.empty_models = set(empty_models or ())
        self.run_s = run_s
        self.prefix = prefix.rstrip("/")
        self.fail_next: list[int] = []
        self.prompt_delay_s = 0.0
        self.prompts: list[dict[str, Any]] = []
        self.uploads: list[str] = []
        self.interrupts: list[str | None] = []
        self.requests: list[dict[str, Any]] = []
        self.history: dict[str, dict[str, Any]] = {}
        self.pending: list[list[Any]] = []
        self.running: list[Any] | None = None
        self._lock = threading.Condition()
        self._interrupt = threading.Event()
        self._counter: Counter[str] = Counter()
        self._number = 0
        self._epoch = 0
        for folder in ("input", "output"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._closed = False
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        threading.Thread(target=self._work, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{self.prefix}"

    def __enter__(self) -> FakeComfyUI:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving and stop the worker."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._server.shutdown()
        self._server.server_close()

    def forget(self) -> None:
        """A restart: history, queue and the running prompt are gone."""
        with self._lock:
            self.history.clear()
            self.pending.clear()
            self.running = None
            self._epoch += 1
            self._interrupt.set()

    def object_info(self) -> dict[str, Any]:
        """The `/object_info` answer now (input files are whatever was uploaded)."""
        return node_table(self.models, [path.name for path in (self.root / "input").iterdir()])

    # validation, as execution.py's validate_prompt / validate_inputs

    def validate(self, prompt: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any], list[str]]:
        """(top-level error or None, node_errors, output node ids)."""
        info = self.object_info()
        outputs = []
        for node_id, node in prompt.items():
            if "class_type" not in node:
                return _error("invalid_prompt", "Cannot execute because a node is missing the class_type property.",
                              f"Node ID '#{node_id}'"), {}, []
            if node["class_type"] not in info:
                return _error("invalid_prompt", f"Cannot execute because node {node['class_type']} does not exist.",
                              f"Node ID '#{node_id}'"), {}, []
            if info[node["class_type"]]["output_node"]:
                outputs.append(node_id)
        if not outputs:
            return _error("prompt_no_outputs", "Prompt has no outputs", ""), {}, []
        validated: dict[str, tuple[bool, list[dict[str, Any]]]] = {}
        node_errors: dict[str, Any] = {}
        good = []
        for output in outputs:
            if self._validate_node(prompt, output, info, validated)[0]:
                good.append(output)
                continue
            for node_id, (valid, reasons) in validated.items():
                if not valid and reasons:
                    entry = node_errors.setdefault(node_id, {"errors": reasons, "dependent_outputs": [],
                                                             "class_type": prompt[node_id]["class_type"]})
                    entry["dependent_outputs"].append(output)
        if not good:
            details = "\n".join(f"{e['message']}: {e['details']}" for entry in node_errors.values()
                                for e in entry["errors"])
            return _error("prompt_outputs_failed_validation", "Prompt outputs failed validation", details), node_errors, []
        return None, node_errors, good

    def _validate_node(self, prompt: dict[str, Any], node_id: str, info: dict[str, Any],
                       validated: dict[str, tuple[bool, list[dict[str, Any]]]]) -> tuple[bool, list[dict[str, Any]]]:
        if node_id in validated:
            return validated[node_id]
        node = prompt[node_id]
        spec = info[node["class_type"]]["input"]
        inputs = node.get("inputs", {})
        errors: list[dict[str, Any]] = []
        valid = True
        for name, (category, config) in {**{k: ("optional", v) for k, v in spec.get("optional", {}).items()},
                                         **{k: ("required", v) for k, v in spec["required"].items()}}.items():
            kind, options = config[0], (config[1] if len(config) > 1 else {})
            extra = {"input_name": name, "input_config": config}
            if name not in inputs:
                if category == "required":
                    errors.append(_error("required_input_missing", "Required input is missing", name, extra))
                continue
            value = inputs[name]
            if isinstance(value, list):
                if len(value) != 2:
                    errors.append(_error("bad_linked_input",
                                         "Bad linked input, must be a length-2 list of [node_id, slot_index]", name, extra))
                    continue
                source, slot = value
                if source not in prompt:
                    errors.append(_error("exception_during_inner_validation", "Exception when validating inner node",
                                         f"'{source}'", extra))
                    continue
                returned = info[prompt[source]["class_type"]]["output"]
                got = returned[slot] if 0 <= slot < len(returned) else None
                if kind != "*" and got != kind and not (isinstance(kind, list) or kind in ("INT", "FLOAT", "STRING")):
                    errors.append(_error("return_type_mismatch", "Return type mismatch between linked nodes",
                                         f"{name}, received_type({got}) mismatch input_type({kind})",
                                         extra | {"received_type": got, "linked_node": value}))
                    continue
                if not self._validate_node(prompt, source, info, validated)[0]:
                    valid = False
                continue
            errors.extend(self._literal_errors(name, kind, options, value, extra))
        if node["class_type"] == "LoadImage" and "image" in inputs and not (self.root / "input" / inputs["image"]).is_file():
            errors.append(_error("custom_validation_failed", "Custom validation failed for node",
                                 f"image - Invalid image file: {inputs['image']}", {"input_name": "image"}))
        result = (valid and not errors, errors)
        validated[node_id] = result
        return result

    def _literal_errors(self, name: str, kind: Any, options: dict[str, Any], value: Any,
                        extra: dict[str, Any]) -> list[dict[str, Any]]:
        extra = extra | {"received_value": value}
        try:
            convert = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}.get(kind if isinstance(kind, str) else "")
            value = convert(value) if convert else value
        except (TypeError, ValueError) as error:
            return [_error("invalid_input_type", f"Failed to convert an input value to a {kind} value",
                           f"{name}, {value}, {error}", extra)]
        if "min" in options and value < options["min"]:
            return [_error("value_smaller_than_min", f"Value {value} smaller than min of {options['min']}", name, extra)]
        if "max" in options and value > options["max"]:
            return [_error("value_bigger_than_max", f"Value {value} bigger than max of {options['max']}", name, extra)]
        choices = kind if isinstance(kind, list) else options.get("options") if kind == "COMBO" else None
        if choices is not None and not options.get("image_upload") and value not in choices:
            listed = f"(list of length {len(choices)})" if len(choices) > 20 else str(choices)
            return [_error("value_not_in_list", "Value not in list", f"{name}: '{value}' not in {listed}", extra)]
        return []

    # running

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self.pending and not self._closed:
                    self._lock.wait()
                if self._closed:
                    return
                self.pending.sort(key=lambda item: item[0])
                item = self.running = self.pending.pop(0)
                epoch = self._epoch
                self._interrupt.clear()
            record = self._execute(item)
            with self._lock:
                if epoch == self._epoch:
                    self.history[item[1]] = record
                    self.running = None

    def _execute(self, item: list[Any]) -> dict[str, Any]:
        number, prompt_id, prompt, extra, outputs = item
        messages: list[list[Any]] = [["execution_start", {"prompt_id": prompt_id, "timestamp": _ms()}],
                                     ["execution_cached", {"nodes": [], "prompt_id": prompt_id, "timestamp": _ms()}]]
        record: dict[str, Any] = {"prompt": item, "outputs": {}, "meta": {}}
        needed = self._upstream(prompt, outputs)
        current = next(iter(needed))
        try:
            if self._interrupt.wait(self.run_s):
                raise _Interrupted
            for node_id in needed:
                current = node_id
                self._fail_if_empty(prompt[node_id])
            for node_id in outputs:
                current = node_id
                record["outputs"][node_id] = self._save(prompt, node_id)
                record["meta"][node_id] = {"node_id": node_id, "display_node": node_id, "parent_node": None,
                                           "real_node_id": node_id}
        except _Interrupted:
            messages.append(["execution_interrupted", {"prompt_id": prompt_id, "node_id": current,
                                                       "node_type": prompt[current]["class_type"], "executed": [],
                                                       "timestamp": _ms()}])
            return record | {"status": {"status_str": "error", "completed": False, "messages": messages}}
        except RuntimeError as error:
            kind, message = error.args
            messages.append(["execution_error", {"prompt_id": prompt_id, "node_id": current,
                                                 "node_type": prompt[current]["class_type"], "executed": [],
                                                 "exception_message": message, "exception_type": kind,
                                                 "traceback": [], "current_inputs": {}, "current_outputs": {},
                                                 "timestamp": _ms()}])
            return record | {"status": {"status_str": "error", "completed": False, "messages": messages}}
        messages.append(["execution_success", {"prompt_id": prompt_id, "timestamp": _ms()}])
        return record | {"status": {"status_str": "success", "completed": True, "messages": messages}}

    @staticmethod
    def _upstream(prompt: dict[str, Any], outputs: list[str]) -> list[str]:
        order: list[str] = []

        def visit(node_id: str) -> None:
            if node_id in order:
                return
            for value in prompt[node_id].get("inputs", {}).values():
                if isinstance(value, list) and len(value) == 2:
                    visit(value[0])
            order.append(node_id)

        for output in outputs:
            visit(output)
        return order

    def _fail_if_empty(self, node: dict[str, Any]) -> None:
        loader = LOADERS.get(node["class_type"])
        name = node["inputs"].get(loader[0]) if loader else None
        if name in self.empty_models:
            raise RuntimeError(*EMPTY_FILE_ERRORS.get(Path(name).suffix, EMPTY_FILE_ERRORS[".safetensors"]))

    def _frames(self, prompt: dict[str, Any], link: Any) -> tuple[list[Image.Image], float]:
        """The images (or latent frames, as images) a link carries, and a frame rate."""
        node_id, slot = link
        node = prompt[node_id]
        kind, inputs = node["class_type"], node["inputs"]
        if kind == "LoadImage":
            with Image.open(self.root / "input" / inputs["image"]) as picture:
                return [picture.convert("RGB")], 0.0
        if kind in ("EmptySD3LatentImage", "EmptyFlux2LatentImage"):
            return [_gradient(inputs["width"], inputs["height"], str(prompt))], 0.0
        if kind == "WanFirstLastFrameToVideo":
            size = (inputs["width"], inputs["height"])
            ends = [self._frames(prompt, inputs[end])[0][0].resize(size) if end in inputs else _gradient(*size, end)
                    for end in ("start_image", "end_image")]
            count = inputs["length"]
            return [Image.blend(ends[0], ends[1], index / max(1, count - 1)) for index in range(count)], 0.0
        if kind == "ImageScale":
            frames, fps = self._frames(prompt, inputs["image"])
            return [frame.resize((inputs["width"] or frame.width, inputs["height"] or frame.height)) for frame in frames], fps
        if kind == "ImageUpscaleWithModel":
            frames, fps = self._frames(prompt, inputs["image"])
            return [frame.resize((frame.width * 4, frame.height * 4)) for frame in frames], fps
        if kind == "ImageBatch":
            first, _ = self._frames(prompt, inputs["image1"])
            second, _ = self._frames(prompt, inputs["image2"])
            return first + [frame.resize(first[0].size) for frame in second], 0.0
        if kind == "CreateVideo":
            return self._frames(prompt, inputs["images"])[0], float(inputs["fps"])
        upstream = {"VAEDecode": "samples", "VAEEncode": "pixels", "KSampler": "latent_image",
                    "KSamplerAdvanced": "latent_image", "SamplerCustomAdvanced": "latent_image"}[kind]
        return self._frames(prompt, inputs[upstream])

    def _save(self, prompt: dict[str, Any], node_id: str) -> dict[str, Any]:
        node = prompt[node_id]
        inputs = node["inputs"]
        subfolder, _, stem = inputs["filename_prefix"].rpartition("/")
        folder = self.root / "output" / subfolder
        folder.mkdir(parents=True, exist_ok=True)
        if node["class_type"] == "SaveVideo":
            frames, fps = self._frames(prompt, inputs["video"])
            name = self._name(subfolder, stem, "mp4")
            _write_mp4(folder / name, frames, fps or 16.0)
            return {"images": [{"filename": name, "subfolder": subfolder, "type": "output"}], "animated": [True]}
        entries = []
        for frame in self._frames(prompt, inputs["images"])[0]:
            name = self._name(subfolder, stem, "png")
            frame.save(folder / name)
            entries.append({"filename": name, "subfolder": subfolder, "type": "output"})
        return {"images": entries}

    def _name(self, subfolder: str, stem: str, ext: str) -> str:
        key = f"{subfolder}/{stem}"
        self._counter[key] += 1
        return f"{stem}_{self._counter[key]:05}_.{ext}"

    # HTTP

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes,
               content_type: str) -> tuple[int, Any, str]:
        if self.fail_next:
            status = self.fail_next.pop(0)
            return status, {"error": f"scripted {status}"}, "json"
        if path == "/system_stats" and method == "GET":
            return 200, {"system": {"os": "posix", "comfyui_version": "fake", "python_version": "3",
                                    "pytorch_version": "none", "argv": ["main.py"], "ram_total": 0, "ram_free": 0},
                         "devices": [{"name": "cpu", "type": "cpu", "index": None, "vram_total": 0, "vram_free": 0}]}, "json"
        if path == "/object_info" and method == "GET":
            return 200, self.object_info(), "json"
        if path.startswith("/object_info/") and method == "GET":
            name = path.removeprefix("/object_info/")
            info = self.object_info()
            return 200, ({name: info[name]} if name in info else {}), "json"
        if path == "/prompt" and method == "POST":
            return self._post_prompt(json.loads(body or b"{}"))
        if path.startswith("/history/") and method == "GET":
            prompt_id = path.removeprefix("/history/")
            with self._lock:
                return 200, ({prompt_id: self.history[prompt_id]} if prompt_id in self.history else {}), "json"
        if path == "/queue" and method == "GET":
            with self._lock:
                return 200, {"queue_running": [self.running] if self.running else [],
                             "queue_pending": list(self.pending)}, "json"
        if path == "/queue" and method == "POST":
            deleted = set(json.loads(body or b"{}").get("delete", []))
            with self._lock:
                self.pending = [item for item in self.pending if item[1] not in deleted]
            return 200, {}, "json"
        if path == "/interrupt" and method == "POST":
            prompt_id = json.loads(body or b"{}").get("prompt_id")
            self.interrupts.append(prompt_id)
            with self._lock:
                if prompt_id is None or (self.running and self.running[1] == prompt_id):
                    self._interrupt.set()
            return 200, {}, "json"
        if path == "/upload/image" and method == "POST":
            return self._upload(body, content_type)
        if path == "/view" and method == "GET":
            return self._view(query)
        return 404, "404: Not Found", "text"

    def _post_prompt(self, data: dict[str, Any]) -> tuple[int, Any, str]:
        self.prompts.append(data)
        if "prompt" not in data:
            return 400, {"error": _error("no_prompt", "No prompt provided", "No prompt provided"), "node_errors": {}}, "json"
        error, node_errors, outputs = self.validate(data["prompt"])
        if error is not None:
            return 400, {"error": error, "node_errors": node_errors}, "json"
        prompt_id = str(data.get("prompt_id") or uuid.uuid4())
        extra = dict(data.get("extra_data") or {}) | ({"client_id": data["client_id"]} if "client_id" in data else {})
        with self._lock:
            number = self._number
            self._number += 1
            self.pending.append([number, prompt_id, data["prompt"], extra, outputs])
            self._lock.notify_all()
        time.sleep(self.prompt_delay_s)
        return 200, {"prompt_id": prompt_id, "number": number, "node_errors": node_errors}, "json"

    def _upload(self, body: bytes, content_type: str) -> tuple[int, Any, str]:
        head = f"Content-Type: {content_type}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.default).parsebytes(head + body)
        fields = {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}
        image = fields.get("image")
        if image is None or not image.get_filename():
            return 400, "400: Bad Request", "text"
        subfolder = fields["subfolder"].get_payload(decode=True).decode() if "subfolder" in fields else ""
        folder = self.root / "input" / subfolder
        folder.mkdir(parents=True, exist_ok=True)
        name = image.get_filename()
        (folder / name).write_bytes(image.get_payload(decode=True))
        self.uploads.append(name)
        return 200, {"name": name, "subfolder": subfolder, "type": "input"}, "json"

    def _view(self, query: dict[str, list[str]]) -> tuple[int, Any, str]:
        filename = query.get("filename", [""])[0]
        subfolder = query.get("subfolder", [""])[0]
        kind = query.get("type", ["output"])[0]
        if not filename or filename.startswith("/") or ".." in filename or ".." in subfolder:
            return 400, "400: Bad Request", "text"
        path = self.root / kind / subfolder / filename
        if kind not in ("input", "output") or not path.is_file():
            return 404, "404: Not Found", "text"
        return 200, path.read_bytes(), "bytes"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fake.requests.append({"method": method, "path": parts.path, "headers": dict(self.headers),
                                      "time": time.monotonic()})
                path = parts.path
                if fake.prefix and not path.startswith(fake.prefix + "/"):
                    status, answer, kind = 404, "404: Not Found", "text"
                else:
                    path = path.removeprefix(fake.prefix)
                    path = path.removeprefix("/api") if path.startswith("/api/") else path
                    status, answer, kind = fake._route(method, path, parse_qs(parts.query), body,
                                                       self.headers.get("Content-Type", ""))
                data = answer if kind == "bytes" else (json.dumps(answer) if kind == "json" else answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", {"json": "application/json", "text": "text/plain",
                                                  "bytes": "application/octet-stream"}[kind])
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

        return Handler


def _ms() -> int:
    return int(time.time() * 1000)


def _gradient(width: int, height: int, key: str) -> Image.Image:
    """A ramp tinted by `key`: distinct, deterministic pixels for a generated image."""
    tint = np.frombuffer(key.encode()[:3].ljust(3, b"x"), dtype=np.uint8).astype(np.float32)
    ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None] * np.ones((height, 1, 1), np.float32)
    return Image.fromarray(((ramp + tint) / 2).astype(np.uint8))


def _write_mp4(path: Path, frames: list[Image.Image], fps: float) -> None:
    """An h264 mp4 of `frames`, as SaveVideo(format mp4, codec h264) writes one."""
    size = frames[0].size
    writer = imageio_ffmpeg.write_frames(str(path), size, fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                                         macro_block_size=1, ffmpeg_log_level="error")
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(np.asarray(frame.convert("RGB").resize(size))))
    writer.close()
