"""Contact sheets of previz frames: a self-contained HTML page opened straight from disk, no server, and markdown for
the Prefect UI with every frame inline as a small JPEG `data:` URI.

Both Prefect UIs show such images: the default one (React) lets `data:image/` through its URL filter and sanitiser,
the classic one (Vue) renders markdown images as plain `<img>`; a `file://` link cannot be opened from an http page.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

from prefect import task

from reelflow.media.images import load_image
from reelflow.schemas.report import money_words
from reelflow.state.store import write_atomic
from reelflow.tasks.retry import NOT_CACHED

THUMBNAIL_BOX = (256, 256)  # a 512x896 frame becomes 146x256, about 7 KB as base64 JPEG
THUMBNAIL_QUALITY = 75
MARKDOWN_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")

STYLE = """
*{box-sizing:border-box}
body{margin:0;padding:24px;background:#111317;color:#e6e6e6;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif}
h1{margin:0 0 4px;font-size:20px;font-weight:600}
.meta{margin:0 0 20px;color:#8b919a}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:16px}
.card{margin:0;background:#1b1e24;border:1px solid #2a2e36;border-radius:8px;overflow:hidden;display:flex;flex-direction:column}
.card img{display:block;width:100%;height:auto;background:#000}
.body{padding:10px 12px 12px}
.head{display:flex;justify-content:space-between;align-items:baseline;gap:8px;margin-bottom:6px}
.shot{font-weight:700;font-size:16px}
.approach{font-size:11px;color:#9ecbff;background:#1d2b3d;border-radius:4px;padding:1px 6px}
.where{color:#8b919a;font-size:12px;margin-bottom:6px}
.prompt{margin:0;white-space:pre-wrap;word-break:break-word}
"""


class SheetRow(Protocol):
    """What a card shows: the shot, how it is made, who and where, its prompt and the image file beside the sheet."""

    @property
    def shot(self) -> int: ...
    @property
    def approach(self) -> str: ...
    @property
    def characters(self) -> list[str]: ...
    @property
    def location(self) -> str: ...
    @property
    def prompt(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def cost_usd(self) -> float: ...


def sheet_money(rows: Sequence[SheetRow]) -> str:
    """What the frames on the sheet cost to make, the local provider's part named as its shadow cost."""
    shadow = round(sum(row.cost_usd for row in rows if row.provider == "local"), 6)
    charged = round(sum(row.cost_usd for row in rows if row.provider != "local"), 6)
    return money_words(charged, shadow)


def _card(row: SheetRow) -> str:
    who = ", ".join(row.characters) or "no characters"
    return (
        '<figure class="card">'
        f'<img src="{escape(quote(row.name))}" alt="shot {row.shot}" loading="lazy">'
        '<figcaption class="body">'
        f'<div class="head"><span class="shot">S{row.shot:02d}</span>'
        f'<span class="approach">{escape(row.approach)}</span></div>'
        f'<div class="where">{escape(who)} · {escape(row.location)}</div>'
        f'<p class="prompt">{escape(row.prompt)}</p>'
        "</figcaption></figure>"
    )


def _frames(rows: Sequence[SheetRow]) -> str:
    return f"{len(rows)} frame{'' if len(rows) == 1 else 's'}"


def markdown_text(text: str) -> str:
    """User text as literal markdown on one line: ASCII punctuation escaped, so it makes no markup, link or cell break."""
    return MARKDOWN_PUNCTUATION.sub(r"\\\1", " ".join(text.split()))


def thumbnail_uri(path: Path) -> str:
    """The image shrunk to fit THUMBNAIL_BOX, as a JPEG `data:` URI."""
    image = load_image(path)
    image.thumbnail(THUMBNAIL_BOX)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=THUMBNAIL_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def contact_sheet_markdown(title: str, rows: Sequence[SheetRow], folder: Path) -> str:
    """The contact sheet as markdown: one table row per frame (its file in `folder`), the frame inline."""
    lines = [
        f"# {markdown_text(title)}",
        "",
        f"{_frames(rows)} · {sheet_money(rows)}",
        "",
        "| shot | frame | approach | characters · location | prompt |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        who = markdown_text(", ".join(row.characters) or "no characters")
        lines.append(
            f"| S{row.shot:02d} | ![shot {row.shot}]({thumbnail_uri(folder / row.name)}) | {markdown_text(row.approach)} "
            f"| {who} · {markdown_text(row.location)} | {markdown_text(row.prompt)} |"
        )
    return "\n".join(lines) + "\n"


def contact_sheet_html(title: str, rows: Sequence[SheetRow]) -> str:
    """The contact sheet as one HTML page; every piece of user text is escaped."""
    cards = "\n".join(_card(row) for row in rows)
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n"
        f"<body><h1>{escape(title)}</h1>"
        f'<p class="meta">{_frames(rows)} · {escape(sheet_money(rows))}</p>\n'
        f'<main class="grid">\n{cards}\n</main></body></html>\n'
    )


@task(name="previz-sheet", task_run_name="previz-sheet", **NOT_CACHED)
def write_previz_sheet(path: Path, title: str, rows: Sequence[SheetRow]) -> Path:
    """Write the contact sheet of `rows` to `path` (atomically) and return it."""
    write_atomic(path, contact_sheet_html(title, rows).encode())
    return path
