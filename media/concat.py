"""Join videos: stream-copy concatenation of a cut, shot clips from model segments, and the last frame a
consecutive segment starts on."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

from reelflow.media.ffmpeg import cover_filter, input_args, one_thread, output_args, run_ffmpeg, thread_args
from reelflow.media.motion import frames_for
from reelflow.media.probe import check_video, probe_video
from reelflow.schemas.assets import MediaInfo
from reelflow.schemas.errors import MediaError

# Muxer settings for stream copies: video only, no metadata, reproducible bytes.
_COPY_ARGS: tuple[str, ...] = (
    "-map", "0:v:0", "-c", "copy", "-an", "-map_metadata", "-1",
    "-fflags", "+bitexact", "-movflags", "+faststart",
)


def same_streams(a: MediaInfo, b: MediaInfo) -> bool:
    """True when two videos can be stream-copied together: same codec, size and frame rate."""
    return (
        (a.codec, a.width, a.height) == (b.codec, b.width, b.height)
        and a.fps is not None
        and b.fps is not None
        and math.isclose(a.fps, b.fps, rel_tol=1e-6)
    )


def _concat_list_line(path: Path) -> str:
    escaped = str(path.resolve()).replace("'", "'\\''")
    return f"file '{escaped}'\n"


def _concat_copy(inputs: list[Path], out: Path, scratch: Path) -> None:
    listing = scratch / "concat.txt"
    listing.write_text("".join(_concat_list_line(path) for path in inputs), encoding="utf-8")
    run_ffmpeg(
        ["-f", "concat", "-safe", "0", "-i", str(listing), *_COPY_ARGS, str(out)],
        what=f"concatenating {out.name}",
    )


def _normalise(source: Path, info: MediaInfo, out: Path, size: tuple[int, int], fps: float) -> None:
    single = one_thread((info.width, info.height), size)
    run_ffmpeg(
        [*thread_args(single), *input_args(source, single), "-map", "0:v:0",
         "-vf", f"{cover_filter(size)},fps={fps}", *output_args(out, fps, size)],
        what=f"normalising {source.name}",
    )


def concat_videos(inputs: list[Path], out: Path, infos: list[MediaInfo] | None = None) -> MediaInfo:
    """Join videos in order, stream-copying when they match, else re-encoding all to the first's size and rate.

    `infos` are the inputs' probes where the caller has them already (a blob's media info): probing 21 clips again
    costs three times the copy itself.
    """
    if not inputs:
        raise MediaError(f"nothing to concatenate into {out.name}")
    if infos is None or len(infos) != len(inputs) or any(info.kind != "video" or not info.frames for info in infos):
        infos = [probe_video(path) for path in inputs]
    first = infos[0]
    size = (first.width, first.height)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="reelflow-concat-") as tmp:
        scratch = Path(tmp)
        parts = inputs
        if not all(same_streams(first, info) for info in infos[1:]):
            assert first.fps is not None
            parts = [scratch / f"part{index:03d}.mp4" for index in range(len(inputs))]
            for source, info, part in zip(inputs, infos, parts):
                _normalise(source, info, part, size, first.fps)
            infos = [probe_video(part) for part in parts]
        _concat_copy(parts, out, scratch)
    return check_video(out, frames=sum(info.frames or 0 for info in infos), size=size)


def fit_clip(
    inputs: list[Path],
    out: Path,
    *,
    duration_s: float,
    fps: int,
    size: tuple[int, int],
    shared_boundaries: bool = False,
    trim: int = 0,
) -> MediaInfo:
    """Join segments in order and retime them uniformly to exactly frames_for(duration_s, fps) frames at `size`.

    With `shared_boundaries`, each segment after the first starts on the previous one's last frame
    (split first-last-frame video), and that repeated frame is dropped at the join. `trim` frames are cut from the
    end of the joined segments first (frames a model made past the shot's duration: never sped up).
    """
    if not inputs:
        raise MediaError(f"no segments for {out.name}")
    frames = frames_for(duration_s, fps)
    skip = [1 if shared_boundaries and index else 0 for index in range(len(inputs))]
    infos = [probe_video(path) for path in inputs]
    single = one_thread(size, *((info.width, info.height) for info in infos))
    joined_frames = sum((info.frames or 0) - drop for info, drop in zip(infos, skip))
    source_frames = max(1, joined_frames - trim)
    cut = f"trim=end_frame={source_frames}," if source_frames < joined_frames else ""
    # Output frame j shows the input frame nearest to j * (source_frames - 1) / (frames - 1), so the
    # first and last frames are kept: input frame i is stamped (i - 1/2) * step output periods, where
    # step = (frames - 1) / (source_frames - 1), and fps rounding up then keeps the latest frame at or
    # before each slot. Input timestamps are ignored; tpad clones the last frame should one be missing.
    num, den = (frames - 1, source_frames - 1) if frames > 1 and source_frames > 1 else (1, 1)
    segments = "".join(
        f"[{index}:v:0]{f'trim=start_frame={drop},setpts=PTS-STARTPTS,' if drop else ''}{cover_filter(size)}[s{index}];"
        for index, drop in enumerate(skip)
    )
    joined = "".join(f"[s{index}]" for index in range(len(inputs)))
    graph = (
        f"{segments}{joined}concat=n={len(inputs)}:v=1:a=0,{cut}settb=AVTB,"
        f"setpts=(N-0.5)*{num}/({den}*{fps})/TB,fps=fps={fps}:start_time=0:round=up,"
        f"tpad=stop_mode=clone:stop={frames}[v]"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    run_ffmpeg(
        [
            *thread_args(single),
            *(arg for path in inputs for arg in input_args(path, single)),
            "-filter_complex", graph, "-map", "[v]", "-frames:v", str(frames), *output_args(out, fps, size),
        ],
        what=f"fitting {out.name}",
    )
    return check_video(out, frames=frames, size=size)


def last_frame(video: Path, out: Path) -> Path:
    """The video's last decoded frame as an RGB PNG of its size: where a shot's next consecutive segment starts."""
    info = probe_video(video)
    last = (info.frames or 0) - 1
    if last < 0:
        raise MediaError(f"{video.name} has no frames")
    single = one_thread((info.width, info.height))
    out.parent.mkdir(parents=True, exist_ok=True)
    run_ffmpeg(
        [
            *thread_args(single), *input_args(video, single), "-map", "0:v:0", "-vf", f"select=eq(n\\,{last})",
            "-fps_mode", "passthrough", "-frames:v", "1", "-pix_fmt", "rgb24", "-fflags", "+bitexact",
            "-flags", "+bitexact", "-update", "1", str(out),
        ],
        what=f"taking the last frame of {video.name}",
    )
    if not out.is_file():
        raise MediaError(f"taking the last frame of {video.name} wrote nothing")
    return out
