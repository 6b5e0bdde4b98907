"""What a shot's take is made from apart from reelflow's code, and why an upgrade of reelflow would make it again.

A take's *inputs* are what people set that its outputs are made from: the shot as the storyboard writes it, the
project settings its stages read, the weights of its characters' LoRAs, its reference images (costume, set), the
environment settings that shape media, the take and its seed. Their fingerprint holds nothing reelflow decides
(stage versions, what a provider's requests carry, default models, the defaults of settings), and the manifest
records it for every take whose clip a render published. A shot whose stages are not all in the cache (some key
changed) is *upgraded* when its take's recorded inputs are today's and its published clip is still there: only
reelflow changed (tasks/shot.py finds them). A shot whose missing work has the very key the manifest recorded is
not: the cache lost that work, and a render makes it again as it always did.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from reelflow.media.ffmpeg import PRESET_ENV
from reelflow.providers.local.replay import VIDEO_VAR
from reelflow.schemas.assets import AssetRef, Manifest, ManifestEntry
from reelflow.schemas.env import FRAME_SCALE_VAR
from reelflow.schemas.project import RENDER_STAGES
from reelflow.schemas.refs import default_wardrobes, fingerprint, shot_refs
from reelflow.state.cache import MEDIA
from reelflow.state.manifest import published_clip
from reelflow.tasks import clip_qc, gates
from reelflow.tasks.job import ShotJob

# project.json fields no output is made from: money, scheduling, concurrency, the title, review stops, and this very
# choice
# (`providers` is replaced by the render stages' resolved choices)
NOT_INPUTS = frozenset({"title", "providers", "concurrency", "budget_usd", "billed_retries", "timezone", "nightly",
                        "upgrades", "review"})
ENVIRONMENT = (FRAME_SCALE_VAR, PRESET_ENV, VIDEO_VAR)  # environment settings that change what media is made
PLANNED = "planned-"  # how a dry run names a file it would make (state/cache.py)
SHORT = 40  # a changed parameter's values are shown when this short


def shot_inputs(job: ShotJob) -> str:
    """sha256 of what the shot's take is made from, as people set it; the same across versions of reelflow.

    Settings left at their defaults are left out, so a default that reelflow changes is an upgrade, not an input.
    """
    project = job.project
    loras = [
        {"character": character, "base_model": entry.base_model, "weights": entry.sha256 or entry.path,
         "scale": entry.scale, "trigger": entry.trigger, "noise": entry.noise}
        for character in job.shot.characters_in_shot for entry in job.lora_registry.characters.get(character, [])
    ]
    content = {
        "project": project.model_dump(mode="json", exclude_defaults=True, exclude=set(NOT_INPUTS)),
        "stages": {stage: project.stage(stage).model_dump(mode="json", exclude_defaults=True) for stage in RENDER_STAGES},
        "episode": job.episode,
        "shot": job.shot.model_dump(mode="json", exclude_defaults=True),
        "take": job.take,
        "seed": job.seed,
        "loras": loras,
        "environment": {name: os.environ.get(name) for name in ENVIRONMENT},
    }
    references = shot_refs(job.root, job.shot, default_wardrobes(job.root))
    if references:  # the refs' content (a shot without any fingerprints as before they existed)
        content["references"] = fingerprint(references)
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def same_inputs(job: ShotJob, manifest: Manifest) -> bool:
    """Whether the manifest records the shot's take as made from the inputs the shot has now."""
    recorded = manifest.take_inputs(job.shot.shot, job.take)
    return recorded is not None and recorded == shot_inputs(job)


def matching_clip(job: ShotJob, manifest: Manifest) -> AssetRef | None:
    """The take's published clip, if the manifest records it as made from the inputs the shot has now."""
    return published_clip(job.assets_dir, manifest, job.shot.shot, job.take) if same_inputs(job, manifest) else None


def versions_now() -> dict[str, int]:
    """The versions of the stages whose work a dry run leaves out of its entries (verdicts and clip checks to make)."""
    return {"qc": gates.JUDGE_VERSION, "clip-qc": clip_qc.VERSION}


def changed_keys(made: list[ManifestEntry], recorded: list[ManifestEntry], stages: list[str]) -> list[str] | None:
    """One line per stage whose own key changed since the take was recorded, and how; `made` is a dry run's walk of
    the take, `stages` those it would make work in. None when work to make has the key recorded for it: the cache
    lost it, reelflow did not change it."""
    cached = {entry.sha256 for entry in made if not entry.sha256.startswith(PLANNED)}
    reasons: list[str] = []
    lost = False
    for entry in made:
        before = [old for old in recorded if old.stage == entry.stage]
        if not entry.sha256.startswith(PLANNED) or not before:
            continue
        same = [old for old in before if (old.stage_version, old.provider, old.params) ==
                (entry.stage_version, entry.provider, entry.params)]
        if same:  # its own key is as recorded: made from inputs made again, or lost from the cache
            lost = lost or any(all(ref.sha256 in cached for ref in old.inputs) for old in same)
            continue
        reasons.append(_why(entry, before))
    for stage, version in versions_now().items():
        was = sorted({old.stage_version for old in recorded if old.stage == stage} - {version})
        if stage in stages and was:
            reasons.append(f"{stage}: reelflow's {stage} stage changed (version {'/'.join(map(str, was))} → {version})")
    if reasons:
        return list(dict.fromkeys(reasons))
    return None if lost else [f"made by an older reelflow ({', '.join(stages)} to make again)"]


def _why(entry: ManifestEntry, before: list[ManifestEntry]) -> str:
    """How a stage's work to make differs from what the take recorded for that stage."""
    versions = sorted({old.stage_version for old in before})
    if entry.stage_version not in versions:
        return (f"{entry.stage}: reelflow's {entry.stage} stage changed "
                f"(version {'/'.join(map(str, versions))} → {entry.stage_version})")
    same_provider = [old for old in before if old.provider == entry.provider]
    if not same_provider:
        return f"{entry.stage}: made by {before[0].provider} before, by {entry.provider} now"
    closest = min((_differences(old.params, entry.params) for old in same_provider), key=len)
    whose = "reelflow's" if entry.provider == MEDIA else f"{entry.provider}'s request"
    return f"{entry.stage}: {whose} parameters changed ({', '.join(closest)})"


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Each parameter that differs: `name old → new` where both values are short, else its name."""
    words = []
    for name in sorted(old.keys() | new.keys()):
        if name in old and name in new and old[name] == new[name]:
            continue
        values = (old.get(name), new.get(name))
        short = all(value is None or isinstance(value, bool | int | float) or (isinstance(value, str) and len(value) <= SHORT)
                    for value in values)
        words.append(f"{name} {' → '.join('unset' if v is None else str(v) for v in values)}" if short else name)
    return words
