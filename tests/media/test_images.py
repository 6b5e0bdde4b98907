"""images: production sizes, triptych splits, Lanczos cover resize, deterministic PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reelflow.media.images import load_image, production_size, resize_cover, save_png, split_triptych
from reelflow.schemas.errors import MediaError

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def test_production_sizes() -> None:
    assert production_size("9:16") == (768, 1344)
    assert production_size("16:9") == (1344, 768)
    with pytest.raises(MediaError, match="4:3"):
        production_size("4:3")


def _strip(size: tuple[int, int], cuts: tuple[int, int], horizontal: bool) -> Image.Image:
    strip = Image.new("RGB", size, RED)
    width, height = size
    if horizontal:
        strip.paste(GREEN, (cuts[0], 0, cuts[1], height))
        strip.paste(BLUE, (cuts[1], 0, width, height))
    else:
        strip.paste(GREEN, (0, cuts[0], width, cuts[1]))
        strip.paste(BLUE, (0, cuts[1], width, height))
    return strip


def _uniform(panel: Image.Image, colour: tuple[int, int, int]) -> bool:
    return bool((np.asarray(panel) == colour).all())


def test_split_wide_triptych_into_vertical_panels() -> None:
    panels = split_triptych(_strip((1536, 912), (512, 1024), horizontal=True))
    assert [p.size for p in panels] == [(512, 912)] * 3
    assert [_uniform(p, c) for p, c in zip(panels, (RED, GREEN, BLUE))] == [True, True, True]


def test_split_tall_triptych_into_horizontal_panels() -> None:
    panels = split_triptych(_strip((912, 1536), (512, 1024), horizontal=False))
    assert [p.size for p in panels] == [(912, 512)] * 3
    assert [_uniform(p, c) for p, c in zip(panels, (RED, GREEN, BLUE))] == [True, True, True]


def test_split_rounds_cuts_when_long_side_not_divisible_by_three() -> None:
    # 1000 / 3 = 333.3 -> 333, 2000 / 3 = 666.7 -> 667
    panels = split_triptych(_strip((1000, 60), (333, 667), horizontal=True))
    assert [p.size for p in panels] == [(333, 60), (334, 60), (333, 60)]
    assert [_uniform(p, c) for p, c in zip(panels, (RED, GREEN, BLUE))] == [True, True, True]


def _centroid(image: Image.Image) -> tuple[float, float]:
    grey = np.asarray(image.convert("L"), dtype=float)
    ys, xs = np.mgrid[0 : grey.shape[0], 0 : grey.shape[1]]
    return float((grey * (xs + 0.5)).sum() / grey.sum()), float((grey * (ys + 0.5)).sum() / grey.sum())


def test_resize_cover_keeps_centred_content_centred() -> None:
    source = Image.new("L", (300, 180), 0)
    source.paste(255, (140, 80, 160, 100))  # a square exactly at the centre
    out = resize_cover(source, (64, 112))
    assert out.size == (64, 112) and out.mode == "RGB"
    cx, cy = _centroid(out)
    assert cx == pytest.approx(32, abs=0.05) and cy == pytest.approx(56, abs=0.05)


def test_resize_cover_crops_the_overflowing_axis() -> None:
    source = Image.new("RGB", (300, 112), RED)  # wider than 64x112: left and right are cut away
    source.paste(GREEN, (110, 0, 190, 112))
    out = np.asarray(resize_cover(source, (64, 112)))
    assert (out == GREEN).all()


def test_resize_cover_uses_a_real_resampler() -> None:
    checker = (np.indices((448, 256)).sum(axis=0) % 2 * 255).astype(np.uint8)
    out = np.asarray(resize_cover(Image.fromarray(checker), (64, 112)), dtype=float)
    # Lanczos averages the 1-pixel checkerboard to mid grey; nearest-neighbour would give 0 or 255.
    assert out.mean() == pytest.approx(127.5, abs=2)
    assert out.std() < 3


def test_resize_cover_upscales_rgba_to_rgb() -> None:
    out = resize_cover(Image.new("RGBA", (32, 56), (10, 200, 30, 128)), (64, 112))
    assert out.mode == "RGB" and out.size == (64, 112)
    assert np.asarray(out)[56, 32].tolist() == [10, 200, 30]


def _chunks(data: bytes) -> list[bytes]:
    chunks, at = [], 8
    while at < len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        chunks.append(data[at + 4 : at + 8])
        at += 12 + length
    return chunks


def test_save_png_is_deterministic_rgb_without_metadata(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    image = Image.fromarray(rng.integers(0, 256, (56, 32, 4), dtype=np.uint8), "RGBA")
    image.info["icc_profile"] = b"fake profile"
    image.info["dpi"] = (300, 300)
    first, second = tmp_path / "a" / "b" / "one.png", tmp_path / "two.png"
    save_png(image, first)
    save_png(image, second)
    data = first.read_bytes()
    assert data == second.read_bytes()
    assert _chunks(data) == [b"IHDR", b"IDAT", b"IEND"]
    with Image.open(first) as reread:
        assert reread.mode == "RGB"
        assert np.array_equal(np.asarray(reread), np.asarray(image.convert("RGB")))


def test_load_image_converts_to_rgb_and_raises_media_error(tmp_path: Path) -> None:
    path = tmp_path / "grey.png"
    Image.new("L", (8, 6), 99).save(path)
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (8, 6)
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(MediaError, match="bad.png"):
        load_image(tmp_path / "bad.png")
