"""A character's LoRA candidates on disk for the pick tests: small PNGs that differ visibly, two of them near-identical.

Candidate `i` (0-based) sits at row `i // 4` of the 4-column grid (file order): its location is LOCATIONS[i // 4], its
angle ANGLES[i % 4], its expression EXPRESSIONS[i % 5] and its wardrobe WARDROBES[i % 3]. Candidates TWINS are the same
picture but for one pixel.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from PIL import Image, ImageDraw

from reelflow.schemas.characters import Candidate, CandidateManifest
from reelflow.state.candidates import candidates_dir, write_candidates

SIZE = 64
ANGLES = ("front", "three-quarter left", "profile right", "back")
LOCATIONS = ("loft", "rooftop", "alley", "market", "train")
EXPRESSIONS = ("neutral", "smirk", "angry", "laughing", "worried")
WARDROBES = ("oilskin", "suit", "coveralls")
HOSTILE = 'neon </script><script>alert(1)</script> & "q" <b>rim</b>'
LIGHTING = ("soft window", HOSTILE, "hard noon")
TWINS = (2, 3)


def picture(index: int) -> Image.Image:
    """A picture of its own: a coloured ground with a few random rectangles and ellipses (seeded by the index)."""
    rng = random.Random(index)
    image = Image.new("RGB", (SIZE, SIZE), tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = rng.randrange(SIZE - 8), rng.randrange(SIZE - 8)
        box = (x, y, x + rng.randrange(8, 40), y + rng.randrange(8, 40))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape(box, fill=tuple(rng.randrange(256) for _ in range(3)))
    return image


def make_candidates(root: Path, character: str = "JINX", count: int = 20) -> CandidateManifest:
    """Write `count` candidate PNGs and their manifest (none selected) under `root`; no project.json is needed."""
    folder = candidates_dir(root, character)
    folder.mkdir(parents=True, exist_ok=True)
    candidates = []
    for index in range(count):
        image = picture(TWINS[0] if index == TWINS[1] else index)
        if index == TWINS[1]:
            image.putpixel((SIZE // 2, SIZE // 2), (255, 255, 255))
        file = f"{character}_{index + 1:02d}.png"
        image.save(folder / file)
        candidates.append(Candidate(
            file=file, sha256=hashlib.sha256((folder / file).read_bytes()).hexdigest(), angle=ANGLES[index % 4],
            horizontal_angle=45.0 * (index % 4), vertical_angle=0.0, zoom=1.0, framing="medium",
            location=LOCATIONS[index // 4 % len(LOCATIONS)], expression=EXPRESSIONS[index % len(EXPRESSIONS)],
            lighting=LIGHTING[index % len(LIGHTING)], caption=f"{character.lower()}, candidate {index + 1}", seed=index,
            wardrobe=WARDROBES[index % len(WARDROBES)],
        ))
    manifest = CandidateManifest(project="TST", character=character, trigger=f"{character.lower()}_rf", mode="threepass",
                                 caption_type="z_image", seed=7, wardrobes=list(WARDROBES), candidates=candidates)
    write_candidates(root, manifest)
    return manifest


def jinx_picked(root: Path) -> Path:
    """The project at `root` with JINX in its breakdown and JINX's candidates made and picked (all but one twin)."""
    breakdown = json.loads((root / "breakdown.json").read_text())
    jinx = {"id": "JINX", "description": "mechanic", "wardrobes": list(WARDROBES)}
    (root / "breakdown.json").write_text(json.dumps(breakdown | {"characters": [jinx]}))
    manifest = make_candidates(root)
    for index, candidate in enumerate(manifest.candidates):
        candidate.selected = index != TWINS[1]
    write_candidates(root, manifest)
    return root
