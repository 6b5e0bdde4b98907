"""A self-contained HTML contact sheet: one card per frame, opened straight from disk, no server."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

from prefect import task

from reelflow.state.store import write_atomic

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


def contact_sheet_html(title: str, rows: Sequence[SheetRow]) -> str:
    """The contact sheet as one HTML page; every piece of user text is escaped."""
    cards = "\n".join(_card(row) for row in rows)
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n"
        f"<body><h1>{escape(title)}</h1>"
        f'<p class="meta">{len(rows)} frame{"" if len(rows) == 1 else "s"}</p>\n'
        f'<main class="grid">\n{cards}\n</main></body></html>\n'
    )


@task(name="previz-sheet", task_run_name="previz-sheet")
def write_previz_sheet(path: Path, title: str, rows: Sequence[SheetRow]) -> Path:
    """Write the contact sheet of `rows` to `path` (atomically) and return it."""
    write_atomic(path, contact_sheet_html(title, rows).encode())
    return path
