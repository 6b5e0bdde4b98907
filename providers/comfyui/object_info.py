"""Check an API-format graph against a server's `GET /object_info` before queueing it.

Read from ComfyUI v0.3.64 (gpu-path.md D; `execution.py` `validate_inputs`, `server.py` `node_info`): an input spec
is `[type, options]` where type is a link type ("MODEL"), a primitive ("INT", "FLOAT", "STRING", "BOOLEAN"), a
list of allowed values (legacy combo) or "COMBO" with `options["options"]` (V3 nodes, the same server mixes both).
ComfyUI checks min and max but never `step`; this module checks INT steps too (a width not a multiple of 16 makes a
smaller latent, a video length not 4n+1 other frames). FLOAT steps are a widget's increment, not checked.
LoadImage's `image_upload` combos are skipped: ComfyUI checks those files itself, after upload.
"""

from __future__ import annotations

from typing import Any

PRIMITIVES = {"INT", "FLOAT", "STRING", "BOOLEAN"}
FILE_INPUTS = {"unet_name", "clip_name", "vae_name", "lora_name", "model_name", "ckpt_name"}
SHOWN = 8


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def _choices(kind: Any, options: dict[str, Any]) -> list[Any] | None:
    """A combo's allowed values, in either shape; None for any other input."""
    if isinstance(kind, list):
        return kind
    if kind == "COMBO":
        return list(options.get("options", []))
    return None


def combo_values(info: dict[str, Any], node: str, name: str) -> list[Any]:
    """The allowed values of a required combo input of `node` in object_info (either shape); [] for none."""
    spec = (((info.get(node) or {}).get("input") or {}).get("required") or {}).get(name) or []
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return (_choices(spec[0], options) or []) if spec else []


def _listed(values: list[Any]) -> str:
    shown = ", ".join(str(value) for value in values[:SHOWN])
    return shown + (", …" if len(values) > SHOWN else "")


def _combo_problem(name: str, value: Any, allowed: list[Any]) -> str | None:
    if value in allowed:
        return None
    if name in FILE_INPUTS:
        return f"{name} {value!r} is not on the server (it has: {_listed(allowed) if allowed else 'none'})"
    return f"{name} {value!r} is not allowed (allowed: {_listed(allowed)})"


def _number_problem(name: str, kind: str, value: Any, options: dict[str, Any]) -> str | None:
    wanted = int if kind == "INT" else (int, float)
    if isinstance(value, bool) or not isinstance(value, wanted):
        return f"{name} {value!r} is not {'an integer' if kind == 'INT' else 'a number'}"
    low, high, step = options.get("min"), options.get("max"), options.get("step")
    if low is not None and value < low:
        return f"{name} {value!r} is below the minimum {low}"
    if high is not None and value > high:
        return f"{name} {value!r} is above the maximum {high}"
    if kind == "INT" and isinstance(step, int) and step > 1 and (value - (low or 0)) % step:
        base = low or 0
        return f"{name} {value!r} is not allowed: {base}, {base + step}, {base + 2 * step}, … (step {step} from {base})"
    return None


def _value_problem(name: str, value: Any, spec: list[Any]) -> str | None:
    kind, options = spec[0], (spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {})
    allowed = _choices(kind, options)
    if allowed is not None:
        return None if options.get("image_upload") else _combo_problem(name, value, allowed)
    if kind in ("INT", "FLOAT"):
        return _number_problem(name, kind, value, options)
    if kind == "STRING" and not isinstance(value, str):
        return f"{name} {value!r} is not a string"
    if kind == "BOOLEAN" and not isinstance(value, bool):
        return f"{name} {value!r} is not a boolean"
    if kind not in PRIMITIVES:
        return f"{name} {value!r} must be a link to a {kind} output"
    return None


def _link_problem(name: str, link: list[Any], spec: list[Any], nodes: dict[str, Any], info: dict[str, Any]) -> str | None:
    source, slot = link
    if source not in nodes:
        return f"{name} {link!r} links to node {source}, which is not in the graph"
    outputs = info.get(nodes[source].get("class_type"), {}).get("output")
    if outputs is None:
        return None
    if not 0 <= slot < len(outputs):
        return f"{name} {link!r} links to output {slot} of node {source}, which has {len(outputs)}"
    kind, got = spec[0], outputs[slot]
    if isinstance(kind, str) and kind not in PRIMITIVES | {"COMBO", "*"} and got not in (kind, "*"):
        return f"{name} {link!r} links to a {got} output, not {kind}"
    return None


def node_problems(node_id: str, node: dict[str, Any], nodes: dict[str, Any], info: dict[str, Any]) -> list[str]:
    """Every problem with one node, as `node <id> (<class>): <input> <value!r> <why>` lines."""
    class_type = node.get("class_type")
    where = f"node {node_id} ({class_type})"
    if class_type not in info:
        return [f"{where}: class_type {class_type!r} is not a node on this server"]
    declared = info[class_type].get("input", {})
    required, optional = declared.get("required", {}), declared.get("optional", {})
    inputs = node.get("inputs", {})
    problems = [f"{where}: {name} is missing (required)" for name in required if name not in inputs]
    for name, value in inputs.items():
        spec = required.get(name) or optional.get(name)
        if spec is None:
            problem = f"{name} {value!r} is not an input of {class_type}"
        elif _is_link(value):
            problem = _link_problem(name, value, spec, nodes, info)
        else:
            problem = _value_problem(name, value, spec)
        if problem:
            problems.append(f"{where}: {problem}")
    return problems


def graph_problems(graph_nodes: dict[str, Any], object_info: dict[str, Any]) -> list[str]:
    """Every problem in a graph against a server's object_info: unknown classes, missing inputs, bad values, links."""
    return [problem for node_id, node in graph_nodes.items()
            for problem in node_problems(node_id, node, graph_nodes, object_info)]
