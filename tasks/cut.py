"""The episode cut: shot clips in storyboard order, joined by stream copy (normalised where streams differ)."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from reelflow.media.concat import concat_videos
from reelflow.media.ffmpeg import x264_settings
from reelflow.schemas.assets import AssetRef, ManifestEntry
from reelflow.schemas.requests import Generation
from reelflow.state.cache import MEDIA, Operation, run_cached
from reelflow.state.store import materialise, store_for
from reelflow.tasks.retry import stage_task_options

VERSION = 3


def cut_path(assets_dir: Path, episode: int) -> Path:
    return assets_dir / f"ep_{episode:03d}.mp4"


@task(name="cut", task_run_name="ep{episode:03d}-cut", **stage_task_options())
def cut_episode(root: Path, episode: int, clips: list[AssetRef], assets_dir: Path) -> ManifestEntry:
    """Join the clips into `ep_NNN.mp4` in the episode's asset folder."""
    store = store_for(root / ".reelflow")
    operation = Operation("cut", VERSION, MEDIA, "concat", {"x264": x264_settings()}, clips, None)

    def make(scratch: Path) -> Generation:
        out = scratch / "cut.mp4"
        concat_videos([clip.path for clip in clips], out, [clip.media for clip in clips])
        return Generation(provider=MEDIA, model="concat", files=[out])

    outcome = run_cached(store, operation, make)
    ref, target = outcome.file, cut_path(assets_dir, episode)
    materialise(ref.path, ref.sha256, target)
    return ManifestEntry(**outcome.provenance.model_dump(), name=target.name, sha256=ref.sha256, media=ref.media)
