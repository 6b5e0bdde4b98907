"""Perceptual hashes of still images: a 64-bit difference hash, and which images are near-duplicates by it."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

from PIL import Image

from reelflow.media.images import load_image

HASH_SIZE = 8  # 8 rows of 8 left/right comparisons: 64 bits
NEAR_DUPLICATE_BITS = 5  # two images whose hashes differ in at most this many bits are near-duplicates


def dhash(path: Path) -> int:
    """The image's 64-bit difference hash: grayscale at 9x8, bit set where a pixel is brighter than its right neighbour."""
    small = load_image(path).convert("L").resize((HASH_SIZE + 1, HASH_SIZE), Image.Resampling.LANCZOS)
    pixels = small.tobytes()  # one byte per pixel, row by row
    value = 0
    for row in range(HASH_SIZE):
        for column in range(HASH_SIZE):
            left = pixels[row * (HASH_SIZE + 1) + column]
            value = (value << 1) | int(left > pixels[row * (HASH_SIZE + 1) + column + 1])
    return value


def hamming(a: int, b: int) -> int:
    """How many bits two hashes differ in."""
    return (a ^ b).bit_count()


def near_duplicates(hashes: dict[str, int]) -> list[tuple[str, str, int]]:
    """Every pair of names whose hashes are within NEAR_DUPLICATE_BITS, once each: (first, second, distance), sorted."""
    pairs = ((a, b, hamming(hashes[a], hashes[b])) for a, b in combinations(sorted(hashes), 2))
    return [pair for pair in pairs if pair[2] <= NEAR_DUPLICATE_BITS]
