"""Benchmark: reelflow's media operations against the ffmpeg command line doing the same job.

Each operation runs on the same inputs both ways, with the same ffmpeg binary (imageio-ffmpeg's, `ffmpeg_exe()`),
and the same output size, rate, frame count and x264 settings (`h264_args()`) where they apply:

    triptych   a STRIP_SIZE["9:16"] PNG strip split into three PNG panels: reelflow.tasks.keyframes._split
               (split_triptych + save_png, Pillow) vs one ffmpeg run with three `crop` outputs;
    push       a 768x1344 still to a 3 s, 16 fps Ken Burns push-in at PUSH_ZOOM: reelflow.media.motion.ken_burns
               (Pillow Lanczos frames piped to x264, then a probe) vs ffmpeg `zoompan` with the same smoothstep zoom
               and focus (zoompan places its window on whole pixels, so it jitters where reelflow's is sub-pixel);
    clip       two 49-frame 720x1280 FLF segments sharing their boundary frame joined and retimed to a 3 s 768x1344
               clip: reelflow.media.concat.fit_clip (as tasks/clip.py calls it) vs one ffmpeg run of the same
               trim/scale/concat/retime filter graph, the segments' frame counts known in advance;
    concat     21 shot clips of 2 s at 768x1344 joined into the episode cut: reelflow.media.concat.concat_videos
               (as tasks/cut.py calls it) vs `ffmpeg -f concat -safe 0 -i list.txt -c copy`. Target: ratio <= 1.20.

Every operation is warmed up once each way (that run also checks both outputs agree and counts the processes
reelflow starts), then timed `--repeat` times, alternating the two sides; it prints the median wall time of each,
their ratio reelflow / ffmpeg and, for concat, PASS or MISS against the target, and writes them as JSON to `--out`.
When concat misses, it times the parts of reelflow's concat and says where the time went (printed and in the
concat entry's "note"). Inputs are generated with ffmpeg (testsrc2, x264 ultrafast) in a temporary directory.

Run it from the repository root (about 20-60 s on two cores); `--only` times the named operations and keeps the
other entries already in `--out` (make bench times the episode concat on its own, with nothing else running):
    .venv/bin/python bench/media.py [--repeat 3] [--only "episode concat"] [--out bench/results/media.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

from reelflow.media.concat import _concat_copy, concat_videos, fit_clip
from reelflow.media.ffmpeg import cover_filter, ffmpeg_exe, h264_args
from reelflow.media.images import PNG_COMPRESS_LEVEL, production_size
from reelflow.media.motion import frames_for, ken_burns
from reelflow.media.probe import probe_image, probe_video
from reelflow.tasks.keyframes import STRIP_SIZE, _split
from reelflow.tasks.video import PUSH_ZOOM, VIDEO_SIZE

ASPECT = "9:16"
FPS = 16
PUSH_S = 3.0
PUSH_FOCUS = (0.5, 0.45)  # ken_burns' default focus, which tasks/video.py keeps
CLIP_S = 3.0
SPLIT_FLF_FRAMES = 49  # each of the benchmark's two segments (a 6 s split FLF shot's halves), fitted to CLIP_S
EPISODE_CLIPS = 21
EPISODE_CLIP_S = 2
CONCAT_TARGET = 1.20
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "media.json"
ORDER = ("triptych split", "ken burns push", "shot clip", "episode concat")

Side = Callable[[Path], None]  # writes its outputs into the (empty) folder it is given


@dataclass(frozen=True)
class Operation:
    name: str
    reelflow: Side
    ffmpeg: Side
    check: Callable[[Path, Path], None]  # compares the two sides' output folders after the warm-up
    target: float | None = None


@dataclass(frozen=True)
class Result:
    name: str
    reelflow_s: float
    ffmpeg_s: float
    target: float | None
    reelflow_processes: int

    @property
    def ratio(self) -> float:
        return self.reelflow_s / self.ffmpeg_s

    @property
    def passed(self) -> bool | None:
        return None if self.target is None else self.ratio <= self.target


def ffmpeg(*args: str) -> None:
    """The ffmpeg command line: reelflow's binary, quiet, failing loudly."""
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"ffmpeg failed ({done.returncode}): {' '.join(args)}\n{done.stderr.strip()[-800:]}")


@contextmanager
def counting_processes() -> Iterator[list[int]]:
    """Count the processes started (subprocess.run goes through Popen) while the block runs."""
    count = [0]
    original = subprocess.Popen

    class Counting(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            count[0] += 1
            super().__init__(*args, **kwargs)

    with mock.patch.object(subprocess, "Popen", Counting):
        yield count


def timed(side: Side, out: Path) -> float:
    out.mkdir(parents=True)
    started = time.perf_counter()
    side(out)
    return time.perf_counter() - started


# --- inputs ---------------------------------------------------------------------------------------------------


def make_still(path: Path, size: tuple[int, int]) -> Path:
    """A testsrc2 picture of `size` as PNG."""
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=s={size[0]}x{size[1]}:r=1", "-frames:v", "1", str(path))
    return path


def make_segments(folder: Path) -> list[Path]:
    """Two split-FLF segments of 49 frames at 720x1280, the second starting on the first's last frame."""
    width, height = VIDEO_SIZE[ASPECT]
    frames = SPLIT_FLF_FRAMES
    segments = []
    for index, start in enumerate((0, frames - 1)):
        path = folder / f"seg{index + 1}.mp4"
        ffmpeg("-f", "lavfi", "-i", f"testsrc2=s={width}x{height}:r={FPS}",
               "-vf", f"trim=start_frame={start}:end_frame={start + frames},setpts=PTS-STARTPTS",
               "-frames:v", str(frames), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
               "-an", str(path))
        segments.append(path)
    return segments


def make_episode_clips(folder: Path) -> list[Path]:
    """21 clips of 2 s at 768x1344, 16 fps: one ultrafast encode cut into keyframe-aligned pieces."""
    width, height = production_size(ASPECT)
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=s={width}x{height}:r={FPS}:d={EPISODE_CLIPS * EPISODE_CLIP_S}",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-an",
           "-force_key_frames", f"expr:gte(t,n_forced*{EPISODE_CLIP_S})",
           "-f", "segment", "-segment_time", str(EPISODE_CLIP_S), "-reset_timestamps", "1",
           str(folder / "shot%02d.mp4"))
    clips = sorted(folder.glob("shot*.mp4"))
    if len(clips) != EPISODE_CLIPS:
        raise SystemExit(f"expected {EPISODE_CLIPS} episode clips, made {len(clips)}")
    return clips


# --- checks -----------------------------------------------------------------------------------------------------


def same_images(a: Path, b: Path) -> None:
    for name in ("first.png", "hero.png", "last.png"):
        left, right = probe_image(a / name), probe_image(b / name)
        if (left.width, left.height) != (right.width, right.height):
            raise SystemExit(f"triptych {name}: reelflow {left.width}x{left.height}, ffmpeg {right.width}x{right.height}")


def same_video(a: Path, b: Path) -> None:
    left, right = probe_video(a / "out.mp4"), probe_video(b / "out.mp4")
    if (left.width, left.height, left.frames, left.fps) != (right.width, right.height, right.frames, right.fps):
        raise SystemExit(f"outputs differ: reelflow {left}, ffmpeg {right}")


# --- operations -------------------------------------------------------------------------------------------------


def triptych(strip: Path) -> Operation:
    width, height = STRIP_SIZE[ASPECT]
    long_side = max(width, height)
    cuts = (0, round(long_side / 3), round(2 * long_side / 3), long_side)
    if width >= height:
        crops = [f"crop={cuts[i + 1] - cuts[i]}:{height}:{cuts[i]}:0" for i in range(3)]
    else:
        crops = [f"crop={width}:{cuts[i + 1] - cuts[i]}:0:{cuts[i]}" for i in range(3)]
    graph = "[0:v]split=3[a][b][c];" + ";".join(f"[{src}]{crop}[p{i}]" for i, (src, crop) in enumerate(zip("abc", crops)))

    def by_ffmpeg(out: Path) -> None:
        outputs = [arg for i, role in enumerate(("first", "hero", "last"))
                   for arg in ("-map", f"[p{i}]", "-frames:v", "1", "-update", "1",
                               "-compression_level", str(PNG_COMPRESS_LEVEL), str(out / f"{role}.png"))]
        ffmpeg("-i", str(strip), "-filter_complex", graph, *outputs)

    return Operation("triptych split", lambda out: _split(out, strip), by_ffmpeg, same_images)


def push(still: Path) -> Operation:
    size = production_size(ASPECT)
    frames = frames_for(PUSH_S, FPS)
    z0, z1 = PUSH_ZOOM
    t = f"(on/{max(frames - 1, 1)})"
    # push_windows: the window's width goes from 1/z0 to 1/z1 of the frame along a smoothstep of t.
    zoom = f"1/({1 / z0}+({1 / z1 - 1 / z0})*{t}*{t}*(3-2*{t}))"
    zoompan = (f"zoompan=z='{zoom}':x='{PUSH_FOCUS[0]}*(iw-iw/zoom)':y='{PUSH_FOCUS[1]}*(ih-ih/zoom)'"
               f":d={frames}:s={size[0]}x{size[1]}:fps={FPS}")

    def by_reelflow(out: Path) -> None:
        ken_burns(still, out / "out.mp4", duration_s=PUSH_S, fps=FPS, size=size, zoom=PUSH_ZOOM, focus=PUSH_FOCUS)

    def by_ffmpeg(out: Path) -> None:
        ffmpeg("-i", str(still), "-vf", zoompan, "-frames:v", str(frames), "-r", str(FPS), *h264_args(),
               str(out / "out.mp4"))

    return Operation("ken burns push", by_reelflow, by_ffmpeg, same_video)


def shot_clip(segments: list[Path]) -> Operation:
    size = production_size(ASPECT)
    frames = frames_for(CLIP_S, FPS)
    source_frames = SPLIT_FLF_FRAMES + (SPLIT_FLF_FRAMES - 1) * (len(segments) - 1)  # shared boundaries dropped
    chains = "".join(f"[{i}:v:0]{'trim=start_frame=1,setpts=PTS-STARTPTS,' if i else ''}{cover_filter(size)}[s{i}];"
                     for i in range(len(segments)))
    joined = "".join(f"[s{i}]" for i in range(len(segments)))
    graph = (f"{chains}{joined}concat=n={len(segments)}:v=1:a=0,settb=AVTB,"
             f"setpts=(N-0.5)*{frames - 1}/({source_frames - 1}*{FPS})/TB,fps=fps={FPS}:start_time=0:round=up,"
             f"tpad=stop_mode=clone:stop={frames}[v]")

    def by_reelflow(out: Path) -> None:
        fit_clip(segments, out / "out.mp4", duration_s=CLIP_S, fps=FPS, size=size, shared_boundaries=True)

    def by_ffmpeg(out: Path) -> None:
        inputs = [arg for path in segments for arg in ("-i", str(path))]
        ffmpeg(*inputs, "-filter_complex", graph, "-map", "[v]", "-frames:v", str(frames), "-r", str(FPS),
               *h264_args(), str(out / "out.mp4"))

    return Operation("shot clip", by_reelflow, by_ffmpeg, same_video)


def concat_list(clips: list[Path], path: Path) -> Path:
    path.write_text("".join(f"file '{clip.resolve()}'\n" for clip in clips), encoding="utf-8")
    return path


def episode_concat(clips: list[Path], listing: Path) -> Operation:
    infos = [probe_video(clip) for clip in clips]  # the cut has them: each clip's blob was probed when it was made

    def by_reelflow(out: Path) -> None:
        concat_videos(clips, out / "out.mp4", infos)

    def by_ffmpeg(out: Path) -> None:
        ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(out / "out.mp4"))

    return Operation("episode concat", by_reelflow, by_ffmpeg, same_video, target=CONCAT_TARGET)


# --- running ----------------------------------------------------------------------------------------------------


def measure(operation: Operation, scratch: Path, repeat: int) -> Result:
    runs = scratch / operation.name.replace(" ", "_")
    with counting_processes() as processes:
        timed(operation.reelflow, runs / "warm-reelflow")
    timed(operation.ffmpeg, runs / "warm-ffmpeg")
    operation.check(runs / "warm-reelflow", runs / "warm-ffmpeg")
    ours, theirs = [], []
    for index in range(repeat):
        ours.append(timed(operation.reelflow, runs / f"reelflow{index}"))
        theirs.append(timed(operation.ffmpeg, runs / f"ffmpeg{index}"))
    return Result(operation.name, statistics.median(ours), statistics.median(theirs), operation.target, processes[0])


def median_time(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def explain_concat(result: Result, clips: list[Path], scratch: Path, repeat: int) -> str:
    """Time the parts of concat_videos (probes, its stream copy) to say where its time goes beyond ffmpeg's."""
    parts = scratch / "concat_parts"
    parts.mkdir()
    copied = parts / "cut.mp4"
    probes = median_time(lambda: [probe_video(clip) for clip in clips], repeat)
    copy = median_time(lambda: _concat_copy(clips, copied, parts), repeat)
    check = median_time(lambda: probe_video(copied), repeat)
    rest = result.reelflow_s - probes - copy - check
    return (
        f"reelflow's concat stream-copies (no re-encode: the clips' codec, size and rate match) but starts "
        f"{result.reelflow_processes} ffmpeg processes where the CLI starts 1: probe_video on each of the "
        f"{len(clips)} inputs ({probes:.2f} s, {probes / len(clips) * 1000:.0f} ms each, a full demux of the file to "
        f"count frames), the copy itself with +faststart ({copy:.2f} s vs the plain copy's {result.ffmpeg_s:.2f} s) "
        f"and check_video's probe of the {len(clips)}-clip output ({check:.2f} s); other {rest:.2f} s. The input "
        f"probes alone cost {probes / result.ffmpeg_s:.1f}x the CLI's whole run; without them the ratio would be about "
        f"{(copy + check) / result.ffmpeg_s:.2f}."
    )


def report(results: list[Result], note: str | None) -> None:
    print(f"{'operation':<16} {'reelflow_s':>10} {'ffmpeg_s':>9} {'ratio':>6}  target")
    for result in results:
        target = "" if result.target is None else f"<= {result.target:.2f} {'PASS' if result.passed else 'MISS'}"
        print(f"{result.name:<16} {result.reelflow_s:10.3f} {result.ffmpeg_s:9.3f} {result.ratio:6.2f}  {target}")
    print("reelflow processes per call: " + ", ".join(f"{r.name} {r.reelflow_processes}" for r in results)
          + " (ffmpeg: 1 each)")
    if note:
        print(f"note (episode concat): {note}")


def write_json(results: list[Result], note: str | None, repeat: int, out: Path) -> None:
    """Write the results to `out`; entries already there for operations not run this time are kept, in ORDER."""
    operations: dict[str, dict[str, Any]] = {}
    if out.exists():
        operations = {entry["name"]: entry for entry in json.loads(out.read_text(encoding="utf-8"))["operations"]}
    for result in results:
        entry: dict[str, Any] = {
            "name": result.name, "reelflow_s": round(result.reelflow_s, 4), "ffmpeg_s": round(result.ffmpeg_s, 4),
            "ratio": round(result.ratio, 3), "target": result.target, "reelflow_processes": result.reelflow_processes,
            "repeat": repeat,
        }
        if result.target is not None:
            entry["passed"] = result.passed
            if note and result.name == "episode concat":
                entry["note"] = note
        operations[result.name] = entry
    out.parent.mkdir(parents=True, exist_ok=True)
    ordered = [operations[name] for name in ORDER if name in operations]
    out.write_text(json.dumps({"operations": ordered, "repeat": repeat}, indent=2) + "\n", encoding="utf-8")


def operations_for(names: list[str], inputs: Path, clips: list[Path]) -> list[Operation]:
    """The named operations, in ORDER, with only their own inputs made (`clips`: the episode concat's)."""
    makers: dict[str, Callable[[], Operation]] = {
        "triptych split": lambda: triptych(make_still(inputs / "strip.png", STRIP_SIZE[ASPECT])),
        "ken burns push": lambda: push(make_still(inputs / "still.png", production_size(ASPECT))),
        "shot clip": lambda: shot_clip(make_segments(inputs)),
        "episode concat": lambda: episode_concat(clips, concat_list(clips, inputs / "list.txt")),
    }
    return [makers[name]() for name in ORDER if name in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each side per operation (median)")
    parser.add_argument("--only", action="append", choices=ORDER, metavar="OPERATION",
                        help="time only this operation (repeatable); the others' entries in --out are kept")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON results")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if not args.only:
        args.out.unlink(missing_ok=True)  # a full run replaces every entry
    with tempfile.TemporaryDirectory(prefix="reelflow-bench-media-") as tmp:
        scratch = Path(tmp)
        inputs = scratch / "inputs"
        inputs.mkdir()
        names = args.only or list(ORDER)
        clips = make_episode_clips(inputs) if "episode concat" in names else []
        results = [measure(operation, scratch, args.repeat) for operation in operations_for(names, inputs, clips)]
        concat = next((result for result in results if result.name == "episode concat"), None)
        note = None if concat is None or concat.passed else explain_concat(concat, clips, scratch, args.repeat)
    report(results, note)
    write_json(results, note, args.repeat, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
