"""The local Gate 2 judge: checks a frame against what the local provider draws for its characters and place."""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image

from reelflow.providers.local.draw import character_colour, unit

PASS_SCORE = 0.6
COLOUR_TOLERANCE = 24.0
MIN_FIGURE_SHARE = 0.001  # a figure's body colour covers at least this share of the frame
SKY_HUE_TOLERANCE = 0.06  # the location's sky hue, as a fraction of the colour circle


def _share_near(pixels: np.ndarray, colour: tuple[int, int, int], tolerance: float) -> float:
    distance = np.linalg.norm(pixels.astype(np.float32) - np.array(colour, np.float32), axis=-1)
    return float(np.mean(distance <= tolerance))


def judge_pixels(image: Image.Image, characters: tuple[str, ...], location: str) -> tuple[float, list[str]]:
    """Score 0..1 (each expected character's figure and the location's sky count equally) and the reasons."""
    pixels = np.asarray(image.convert("RGB"))
    reasons = []
    found = 0
    for character in characters:
        if _share_near(pixels, character_colour(character), COLOUR_TOLERANCE) >= MIN_FIGURE_SHARE:
            found += 1
        else:
            reasons.append(f"character {character} is not in the frame")
    checks = len(characters)
    if location:
        checks += 1
        top = pixels[: max(1, pixels.shape[0] // 50)]
        red, green, blue = (float(v) / 255 for v in np.median(top.reshape(-1, 3), axis=0))
        hue = colorsys.rgb_to_hls(red, green, blue)[0]
        off = abs(hue - unit("location", location)) % 1.0
        if min(off, 1.0 - off) <= SKY_HUE_TOLERANCE:
            found += 1
        else:
            reasons.append(f"the setting does not look like {location}")
    return (found / checks if checks else 1.0), reasons
