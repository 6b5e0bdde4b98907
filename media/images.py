"""Still-image operations: production sizes, triptych splitting, cover resizing, deterministic PNGs."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError

from reelflow.schemas.errors import MediaError

PRODUCTION_SIZES: dict[str, tuple[int, int]] = {"9:16": (768, 1344), "16:9": (1344, 768)}
PNG_COMPRESS_LEVEL = 4


def production_size(aspect_ratio: str) -> tuple[int, int]:
    """(width, height) of keyframes and video for an episode's aspect ratio."""
    try:
        return PRODUCTION_SIZES[aspect_ratio]
    except KeyError:
        raise MediaError(
            f"unsupported aspect ratio {aspect_ratio!r}; expected one of {', '.join(PRODUCTION_SIZES)}"
        ) from None


def load_image(path: Path) -> Image.Image:
    """Read an image file fully into memory as RGB."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError) as error:
        raise MediaError(f"cannot read image {path.name}: {error}") from None


def split_triptych(strip: Image.Image) -> tuple[Image.Image, Image.Image, Image.Image]:
    """Cut a 3-panel strip at 1/3 and 2/3 of its long side into (first, hero, last)."""
    width, height = strip.size
    long_side = max(width, height)
    if long_side < 3:
        raise MediaError(f"triptych strip {width}x{height} is too small to split")
    cuts = (0, round(long_side / 3), round(2 * long_side / 3), long_side)
    if width >= height:
        boxes = [(cuts[i], 0, cuts[i + 1], height) for i in range(3)]
    else:
        boxes = [(0, cuts[i], width, cuts[i + 1]) for i in range(3)]
    first, hero, last = (strip.crop(box) for box in boxes)
    return first, hero, last


def resize_cover(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale (Lanczos) to cover `size` keeping aspect and centre-crop to it, in one resample; RGB."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    width, height = rgb.size
    scale = max(size[0] / width, size[1] / height)
    crop_w, crop_h = min(width, size[0] / scale), min(height, size[1] / scale)
    left, top = (width - crop_w) / 2, (height - crop_h) / 2
    return rgb.resize(size, Image.Resampling.LANCZOS, box=(left, top, left + crop_w, top + crop_h))


def save_png(image: Image.Image, path: Path) -> None:
    """Write `image` as an RGB PNG with fixed compression and no metadata, creating parent dirs."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    clean = Image.frombytes("RGB", rgb.size, rgb.tobytes())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean.save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    except OSError as error:
        raise MediaError(f"cannot write {path.name}: {error}") from None


def white_background(path: Path) -> bool:
    """True when the image's border (its outer 6 %) is almost uniformly white: a studio backdrop, not a place."""
    image = load_image(path).convert("L")
    width, height = image.size
    band = max(1, round(min(width, height) * 0.06))
    pixels = [
        value
        for box in ((0, 0, width, band), (0, height - band, width, height), (0, 0, band, height),
                    (width - band, 0, width, height))
        for value in image.crop(box).resize((32, 32)).tobytes()
    ]
    return sum(value >= 235 for value in pixels) >= 0.9 * len(pixels)
