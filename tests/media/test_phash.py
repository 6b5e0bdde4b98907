"""The difference hash: the same picture hashes alike, a different one far apart; near pairs are listed once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from reelflow.media.phash import NEAR_DUPLICATE_BITS, dhash, hamming, near_duplicates


def gradient(path: Path, rising: bool, size: tuple[int, int] = (64, 48)) -> Path:
    """A horizontal grey ramp, brightening to the right (`rising`) or darkening."""
    ramp = np.linspace(0, 255, size[0]).astype(np.uint8)
    row = ramp if rising else ramp[::-1]
    Image.fromarray(np.tile(row, (size[1], 1)), "L").convert("RGB").save(path)
    return path


def test_the_same_picture_hashes_alike_and_a_different_one_far_apart(tmp_path: Path) -> None:
    rising = gradient(tmp_path / "rising.png", True)
    with Image.open(rising) as image:
        image.resize((128, 96)).save(tmp_path / "bigger.jpg", quality=90)
    falling = gradient(tmp_path / "falling.png", False)
    assert dhash(rising) == 0  # every pixel darker than its right neighbour
    assert hamming(dhash(rising), dhash(gradient(tmp_path / "again.png", True))) == 0
    assert hamming(dhash(rising), dhash(tmp_path / "bigger.jpg")) <= NEAR_DUPLICATE_BITS
    assert dhash(falling) == (1 << 64) - 1 and hamming(dhash(rising), dhash(falling)) == 64


def test_hamming_counts_differing_bits() -> None:
    assert (hamming(0, 0), hamming(0b1011, 0b0001), hamming(0, (1 << 64) - 1)) == (0, 2, 64)


def test_near_duplicates_lists_each_near_pair_once_in_order() -> None:
    hashes = {"c.png": 0b111, "a.png": 0, "b.png": (1 << 64) - 1, "d.png": 0b11111, "e.png": 0b111111}
    assert near_duplicates(hashes) == [("a.png", "c.png", 3), ("a.png", "d.png", 5), ("c.png", "d.png", 2),
                                       ("c.png", "e.png", 3), ("d.png", "e.png", 1)]
    assert near_duplicates({"only.png": 5}) == [] and near_duplicates({}) == []
