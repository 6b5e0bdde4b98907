"""Size, frame count, rate and codec of an MP4 or MOV video read from its boxes (ISO/IEC 14496-12), no ffmpeg.

Only a plain, complete file is answered: one `moov` with a video track whose sample table gives every frame, an
`mdat` that holds every sample's bytes, at most one edit. Anything else (a fragmented or truncated file, an edit list
that drops frames, a codec not named below) gets None, and media/probe.py asks ffmpeg, as it always did.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from reelflow.schemas.assets import MediaInfo

# Sample entry four-character codes and the names ffmpeg gives their codecs.
CODECS = {b"avc1": "h264", b"avc3": "h264", b"hvc1": "hevc", b"hev1": "hevc", b"av01": "av1", b"vp09": "vp9",
          b"mp4v": "mpeg4"}
CONTAINERS = {b"trak", b"mdia", b"minf", b"stbl", b"edts"}


class _Unreadable(Exception):
    """The file is not one this reader answers for."""


def _header(head: bytes, at: int, room: int) -> tuple[bytes, int, int]:
    """(type, header length, box length) of the box at head[at:], with `room` bytes left for it in its parent."""
    if len(head) - at < 8:
        raise _Unreadable
    length, kind = struct.unpack_from(">I4s", head, at)
    header = 8
    if length == 1:
        if len(head) - at < 16:
            raise _Unreadable
        length, header = struct.unpack_from(">Q", head, at + 8)[0], 16
    elif length == 0:
        length = room
    if length < header or length > room:
        raise _Unreadable  # cut short: ffmpeg says what is left
    return kind, header, length


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of each box in data[start:end]."""
    end = len(data) if end is None else end
    at = start
    while at < end:
        kind, header, length = _header(data, at, end - at)
        yield kind, at + header, at + length
        at += length


def _top_level(path: Path) -> tuple[bytes, int]:
    """The `moov` box's bytes, and the payload size of the file's `mdat` boxes."""
    size = path.stat().st_size
    moov: bytes | None = None
    media = 0
    with path.open("rb") as file:
        at = 0
        while at < size:
            file.seek(at)
            kind, header, length = _header(file.read(16), 0, size - at)
            if kind == b"moof":
                raise _Unreadable  # fragmented: the frames are not all in one table
            if kind == b"moov":
                if moov is not None:
                    raise _Unreadable
                file.seek(at + header)
                moov = file.read(length - header)
            elif kind == b"mdat":
                media += length - header
            at += length
    if moov is None:
        raise _Unreadable
    return moov, media


def _video_track(moov: bytes) -> dict[bytes, tuple[int, int]]:
    """The payload spans of the first video track's boxes, by type."""
    for kind, start, end in _boxes(moov):
        if kind != b"trak":
            continue
        spans: dict[bytes, tuple[int, int]] = {}
        pending = [(start, end)]
        while pending:
            low, high = pending.pop()
            for inner, inner_start, inner_end in _boxes(moov, low, high):
                spans.setdefault(inner, (inner_start, inner_end))
                if inner in CONTAINERS:
                    pending.append((inner_start, inner_end))
        handler = spans.get(b"hdlr")
        if handler and moov[handler[0] + 8:handler[0] + 12] == b"vide":
            return spans
    raise _Unreadable


def _info(moov: bytes, media: int) -> MediaInfo:
    track = _video_track(moov)
    try:
        mdhd, stsd, stsz, stts = (track[kind][0] for kind in (b"mdhd", b"stsd", b"stsz", b"stts"))
    except KeyError:
        raise _Unreadable from None
    if b"elst" in track:
        elst = track[b"elst"][0]
        version, entries = moov[elst], struct.unpack_from(">I", moov, elst + 4)[0]
        media_time = struct.unpack_from(">q" if version == 1 else ">i", moov, elst + 8 + (8 if version == 1 else 4))[0]
        if entries != 1 or media_time < 0:
            raise _Unreadable  # an edit that skips or inserts time: ffmpeg decides which frames play
    if moov[mdhd] == 1:
        timescale, duration = struct.unpack_from(">IQ", moov, mdhd + 20)
    else:
        timescale, duration = struct.unpack_from(">II", moov, mdhd + 12)
    if struct.unpack_from(">I", moov, stsd + 4)[0] < 1:
        raise _Unreadable
    codec = CODECS.get(moov[stsd + 12:stsd + 16])
    width, height = struct.unpack_from(">HH", moov, stsd + 8 + 32)
    sample_size, frames = struct.unpack_from(">II", moov, stsz + 4)
    sizes = frames * sample_size if sample_size else sum(struct.unpack_from(f">{frames}I", moov, stsz + 12))
    entries = struct.unpack_from(">I", moov, stts + 4)[0]
    deltas = struct.unpack_from(f">{2 * entries}I", moov, stts + 8)
    counted = sum(deltas[0::2])
    ticks = sum(count * delta for count, delta in zip(deltas[0::2], deltas[1::2], strict=True))
    if codec is None or not (width and height and frames and timescale and ticks) or counted != frames \
            or ticks != duration or sizes > media:
        raise _Unreadable
    fps = round(frames * timescale / ticks, 2)  # ffmpeg prints the average rate to two decimals
    return MediaInfo(kind="video", width=width, height=height, frames=frames, fps=fps, duration_s=frames / fps,
                     codec=codec)


def read_mp4(path: Path) -> MediaInfo | None:
    """The video facts of a plain MP4/MOV file, or None where ffmpeg must tell them."""
    try:
        return _info(*_top_level(path))
    except (_Unreadable, struct.error, OSError):
        return None
