"""The LoRA candidate pick page: a character's candidates as JSON, and one self-contained page that curates them."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any
from urllib.parse import quote

from reelflow.media.phash import NEAR_DUPLICATE_BITS
from reelflow.schemas.characters import EXPRESSION_RANGE, SELECTION_RANGE, WARDROBE_RANGE, Candidate, CandidateManifest
from reelflow.web.dailies_page import script_json

MIN_BACKGROUNDS = 5  # distinct locations a selection should cover
MIN_EXPRESSIONS = EXPRESSION_RANGE[0]
MIN_ANGLES = 3
FILTERS = ("angle", "location", "wardrobe", "expression")
SORTS = ("file", "angle", "location", "wardrobe", "expression")
UNKNOWN = "unknown"  # how the page shows the wardrobe of a candidate made before wardrobes were recorded
# the diversity panel's rows: what is counted, and its target (at least N, or the seed's range)
PANEL = (("backgrounds", f"≥{MIN_BACKGROUNDS}"), ("wardrobes", "{}–{}".format(*WARDROBE_RANGE)),
         ("expressions", "{}–{}".format(*EXPRESSION_RANGE)), ("angles", f"≥{MIN_ANGLES}"))


def pick_view(manifest: CandidateManifest, phashes: Mapping[str, int | None]) -> dict[str, Any]:
    """The manifest as JSON, each candidate with its perceptual hash (16 hex digits, or None), and the page's limits."""
    view = manifest.model_dump(mode="json")
    for candidate in view["candidates"]:
        value = phashes.get(candidate["file"])
        candidate["phash"] = None if value is None else f"{value:016x}"
    low, high = SELECTION_RANGE
    view["limits"] = {"selection": [low, high], "backgrounds": MIN_BACKGROUNDS, "expressions": MIN_EXPRESSIONS,
                      "angles": MIN_ANGLES, "near_duplicate_bits": NEAR_DUPLICATE_BITS,
                      "targets": {"wardrobes": list(WARDROBE_RANGE), "expressions": list(EXPRESSION_RANGE)}}
    return view


STYLE = """
*{box-sizing:border-box}
[hidden]{display:none!important}
body{margin:0;background:#111317;color:#e6e6e6;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif}
header{position:sticky;top:0;z-index:2;display:flex;align-items:center;gap:12px 16px;padding:12px 24px;flex-wrap:wrap;
  background:#111317ee;border-bottom:1px solid #2a2e36}
h1{margin:0;font-size:18px;font-weight:600}
h2{margin:0 0 6px;font-size:12px;text-transform:uppercase;letter-spacing:.05em;color:#8b919a}
label{color:#8b919a;font-size:12px}
select,button{font:inherit;background:#1b1e24;color:#e6e6e6;border:1px solid #2a2e36;border-radius:6px;padding:4px 8px}
button{cursor:pointer}
#save{border-color:#4caf6a}
#count{font-weight:600;padding:2px 8px;border-radius:6px}
#count.ok{background:#1f3b28;color:#8fd19e}#count.low,#count.high{background:#3b2a1f;color:#f0c27a}
#status{color:#9ecbff;min-height:1.45em}
#status.error{color:#ff8f8f}
#grid{display:grid;grid-template-columns:repeat(4,minmax(0,1fr));gap:12px;padding:16px 24px 220px;outline:none}
.card{position:relative;background:#1b1e24;border:3px solid transparent;border-radius:8px;padding:6px;cursor:pointer;
  scroll-margin:110px 0 24px}
.card img{display:block;width:100%;aspect-ratio:3/4;object-fit:contain;background:#000;border-radius:4px}
.card.selected{border-color:#4caf6a;background:#1f2b23}
.card.selected::after{content:"✓";position:absolute;top:10px;right:12px;width:24px;height:24px;border-radius:12px;
  background:#4caf6a;color:#111317;font-weight:700;text-align:center;line-height:24px}
.card.focused{outline:3px solid #fff;outline-offset:2px}
.card.near-duplicate{box-shadow:inset 0 0 0 3px #e0b341}
.meta{display:flex;flex-wrap:wrap;gap:2px 8px;margin-top:6px;font-size:12px}
.meta span{color:#c9ccd1}.meta .label{color:#8b919a}
.file{color:#8b919a;font-size:11px;word-break:break-all}
#diversity{position:fixed;right:16px;bottom:16px;z-index:3;width:280px;max-height:60vh;overflow:auto;background:#1b1e24f5;
  border:1px solid #2a2e36;border-radius:8px;padding:10px 12px;box-shadow:0 4px 16px #0008}
#diversity dl{display:grid;grid-template-columns:1fr max-content max-content;gap:2px 12px;margin:0}
#diversity dt{color:#8b919a}#diversity dd{margin:0;font-weight:600}#diversity dd.aim{color:#8b919a;font-weight:400}
#diversity ul{margin:6px 0 0;padding-left:18px}
.warning{color:#f0c27a}.duplicate{color:#f0c27a;overflow-wrap:anywhere}
#duplicates{margin-top:8px}
footer{padding:0 24px 24px;color:#8b919a;font-size:12px}
"""

SCRIPT = """
"use strict";
const $ = (id) => document.getElementById(id);
const data = JSON.parse($("candidates").textContent);
const COLUMNS = 4;
const [LOW, HIGH] = data.limits.selection;
const TARGETS = data.limits.targets;
const DIVERSITY = [
  {key: "location", id: "n-backgrounds", label: "backgrounds", low: data.limits.backgrounds},
  {key: "wardrobe", id: "n-wardrobes", label: "wardrobes", low: TARGETS.wardrobes[0], high: TARGETS.wardrobes[1]},
  {key: "expression", id: "n-expressions", label: "expressions", low: TARGETS.expressions[0],
   high: TARGETS.expressions[1]},
  {key: "angle", id: "n-angles", label: "angles", low: data.limits.angles},
];
const UNKNOWN = "unknown";
const fieldText = (c, key) => c[key] ?? UNKNOWN;  // a wardrobe made before wardrobes were recorded: unknown
const MOVES = {ArrowLeft: -1, ArrowRight: 1, ArrowUp: -COLUMNS, ArrowDown: COLUMNS};
const cards = new Map([...document.querySelectorAll("#grid .card")].map((card) => [card.dataset.file, card]));
const selected = new Set(data.candidates.filter((c) => c.selected).map((c) => c.file));
const compare = (a, b) => String(a).localeCompare(String(b), undefined, {numeric: true});
let order = [];
let focused = null;
let saving = Promise.resolve();

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function status(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function bits(a, b) {
  let x = BigInt("0x" + a) ^ BigInt("0x" + b);
  let count = 0;
  for (; x; x &= x - 1n) count += 1;
  return count;
}

function picks() {
  return data.candidates.filter((c) => selected.has(c.file));
}

function renderCount() {
  const n = selected.size;
  $("count").textContent = n + " selected · aim " + LOW + "–" + HIGH;
  $("count").className = n < LOW ? "low" : n > HIGH ? "high" : "ok";
}

function renderDiversity(chosen) {
  const warnings = [];
  for (const item of DIVERSITY) {
    const n = new Set(chosen.map((c) => c[item.key]).filter((value) => value !== null)).size;
    $(item.id).textContent = n;
    if (n < item.low || n > item.high) {
      const aim = item.high === undefined ? "at least " + item.low : item.low + "–" + item.high;
      const line = el("li", n + " " + item.label + " (aim for " + aim + ")", "warning");
      line.dataset.kind = item.label;
      warnings.push(line);
    }
  }
  $("warnings").replaceChildren(...warnings);
}

function renderDuplicates(chosen) {
  const hashed = chosen.filter((c) => c.phash).sort((a, b) => compare(a.file, b.file));
  const pairs = [];
  hashed.forEach((a, i) => hashed.slice(i + 1).forEach((b) => {
    const distance = bits(a.phash, b.phash);
    if (distance <= data.limits.near_duplicate_bits) pairs.push([a.file, b.file, distance]);
  }));
  const near = new Set(pairs.flatMap(([a, b]) => [a, b]));
  cards.forEach((card, file) => card.classList.toggle("near-duplicate", near.has(file)));
  $("duplicate-pairs").replaceChildren(...pairs.map(([a, b, distance]) => {
    const line = el("li", a + " ≈ " + b + " (" + distance + " bits apart)", "duplicate");
    line.dataset.pair = a + " " + b;
    return line;
  }));
  $("duplicates").hidden = pairs.length === 0;
}

function render() {
  cards.forEach((card, file) => {
    card.classList.toggle("selected", selected.has(file));
    card.setAttribute("aria-pressed", selected.has(file) ? "true" : "false");
  });
  const chosen = picks();
  renderCount();
  renderDiversity(chosen);
  renderDuplicates(chosen);
}

function renderFocus(scroll) {
  cards.forEach((card, file) => card.classList.toggle("focused", file === focused));
  if (scroll && focused !== null) cards.get(focused).scrollIntoView({block: "nearest"});
}

function arrange() {
  const wanted = Object.fromEntries(["angle", "location", "wardrobe", "expression"].map(
    (key) => [key, $("filter-" + key).value]));
  const key = $("sort").value;
  const sorted = [...data.candidates].sort(
    (a, b) => compare(fieldText(a, key), fieldText(b, key)) || compare(a.file, b.file));
  const shown = (c) => Object.entries(wanted).every(([field, value]) => value === "" || fieldText(c, field) === value);
  $("grid").append(...sorted.map((c) => cards.get(c.file)));
  sorted.forEach((c) => { cards.get(c.file).hidden = !shown(c); });
  order = sorted.filter(shown).map((c) => c.file);
  if (!order.includes(focused)) focused = order.length ? order[0] : null;
  renderFocus(false);
}

function move(step) {
  const next = order.indexOf(focused) + step;
  if (next < 0 || next >= order.length) return;
  focused = order[next];
  renderFocus(true);
}

function toggle(file) {
  if (selected.has(file)) selected.delete(file);
  else selected.add(file);
  render();
  status("unsaved changes", false);
}

async function post(files) {
  try {
    const response = await fetch("/api/selection", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({files: files}),
    });
    const body = await response.json();
    if (response.ok) status("saved " + body.saved, false);
    else status(body.error, true);
  } catch (error) {
    status("could not save: " + error.message, true);
  }
}

function save() {
  const files = picks().map((c) => c.file);
  status("saving " + files.length + "…", false);
  saving = saving.then(() => post(files));
}

document.addEventListener("keydown", (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "s") {
    event.preventDefault();
    save();
    return;
  }
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target.closest("select, input, textarea")) return;
  if (Object.hasOwn(MOVES, event.key)) {
    event.preventDefault();
    move(MOVES[event.key]);
  } else if ((event.key === " " || event.key === "Enter") && !event.target.closest("button") && focused !== null) {
    event.preventDefault();
    toggle(focused);
  }
});
cards.forEach((card, file) => card.addEventListener("click", () => {
  focused = file;
  renderFocus(false);
  toggle(file);
}));
document.querySelectorAll("header select").forEach((control) => control.addEventListener("change", arrange));
$("save").addEventListener("click", save);
arrange();
render();
"""


def options(manifest: CandidateManifest, field: str) -> str:
    """The `<option>`s of one filter: "all", then each distinct value of the field, sorted."""
    values = sorted({getattr(candidate, field) or UNKNOWN for candidate in manifest.candidates})
    return '<option value="">all</option>' + "".join(
        f'<option value="{escape(value)}">{escape(value)}</option>' for value in values)


def card_html(candidate: Candidate) -> str:
    """One candidate's card: its thumbnail, where it sits in the diversity grid, and whether it is selected."""
    file = escape(candidate.file)
    classes, pressed = ("card selected", "true") if candidate.selected else ("card", "false")
    meta = "".join(f'<span class="{field}"><span class="label">{field}</span> '
                   f'{escape(getattr(candidate, field) or UNKNOWN)}</span>'
                   for field in ("angle", "location", "wardrobe", "expression", "lighting"))
    return (f'<div class="{classes}" role="button" aria-pressed="{pressed}" tabindex="-1" data-file="{file}">'
            f'<img src="/candidates/{escape(quote(candidate.file))}" alt="{file}" loading="lazy" decoding="async">'
            f'<div class="meta">{meta}</div><div class="file">{file}</div></div>')


def panel_rows() -> str:
    """The diversity panel's rows: each count (filled in by the script) beside its target."""
    return "".join(f'<dt>{label}</dt><dd id="n-{label}">0</dd><dd class="aim" id="aim-{label}">aim {aim}</dd>'
                   for label, aim in PANEL)


def pick_html(manifest: CandidateManifest, phashes: Mapping[str, int | None] | None = None) -> str:
    """The pick page: cards and filters drawn here with every manifest text escaped, the view embedded as escaped JSON."""
    title = escape(f"{manifest.project} · {manifest.character} ({manifest.trigger}) · LoRA candidates")
    filters = "".join(f'<label>{field} <select id="filter-{field}">{options(manifest, field)}</select></label>'
                      for field in FILTERS)
    sorts = "".join(f'<option value="{field}">{field}</option>' for field in SORTS)
    low, high = SELECTION_RANGE
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{title}</title><style>{STYLE}</style></head>\n"
        f'<body><header><h1>{title}</h1><span id="count" class="low">0 selected · aim {low}–{high}</span>\n'
        f'{filters}<label>sort <select id="sort">{sorts}</select></label>\n'
        '<button type="button" id="save">Save</button><span id="status" role="status"></span></header>\n'
        f'<main id="grid" tabindex="0" role="group" aria-label="candidates">'
        f'{"".join(card_html(candidate) for candidate in manifest.candidates)}</main>\n'
        '<aside id="diversity" aria-label="diversity of the selection"><h2>Selected</h2><dl>'
        f'{panel_rows()}</dl><ul id="warnings"></ul>\n'
        '<section id="duplicates" hidden><h2>Near-duplicates</h2><ul id="duplicate-pairs"></ul></section></aside>\n'
        "<footer>← → ↑ ↓ move · Space or Enter select / deselect · click a card to toggle it · Ctrl+S save</footer>\n"
        f'<script type="application/json" id="candidates">{script_json(pick_view(manifest, phashes or {}))}</script>\n'
        f"<script>{SCRIPT}</script></body></html>\n"
    )
