"""The dailies review page: the episode's review state as JSON, and one self-contained page that shows and decides it."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from reelflow.schemas.assets import Manifest
from reelflow.schemas.dailies import Dailies, DailiesShot
from reelflow.schemas.errors import ContractError
from reelflow.schemas.load import ProjectFolder
from reelflow.schemas.names import AssetName
from reelflow.schemas.report import money_words
from reelflow.schemas.storyboard import Shot, Storyboard

CLIP = "clip"


def take_assets(manifest: Manifest, shot: Shot, take: int) -> dict[str, Any]:
    """The named keyframes (in role order) and the clip of one take of a shot, as the manifest lists them."""
    by_suffix: dict[str, str] = {}
    for entry in manifest.take_assets(shot.shot, take):
        try:
            suffix = AssetName.parse(entry.name or "").suffix
        except ContractError:
            continue
        if suffix:
            by_suffix[suffix] = entry.name or ""
    # a take held at its keyframes for review shows its raw frames (`_rawfirst`…), else the upscaled ones
    keyframes = [{"role": role, "name": by_suffix.get(role) or by_suffix[f"raw{role}"]} for role in shot.keyframe_roles
                 if role in by_suffix or f"raw{role}" in by_suffix]
    return {"keyframes": keyframes, "clip": by_suffix.get(CLIP)}


def take_spend(manifest: Manifest, shot: Shot, take: int) -> str:
    """What one take of a shot cost, in money words: charged, and the local provider's shadow cost."""
    entries = [entry for entry in manifest.assets + manifest.intermediates if entry.shot == shot.shot
               and (entry.take or 1) == take]
    shadow = sum(entry.cost_usd for entry in entries if entry.provider == "local")
    charged = sum(entry.cost_usd for entry in entries if entry.provider != "local")
    return money_words(round(charged, 6), round(shadow, 6))


def shot_view(shot: Shot, review: DailiesShot, manifest: Manifest) -> dict[str, Any]:
    return {
        "shot": shot.shot,
        "approach": shot.generation_approach.value,
        "characters": list(shot.characters_in_shot),
        "location": shot.location,
        "duration_s": shot.duration_s,
        "prompt": shot.hero_prompt,
        "status": review.status,
        "take": review.take,
        "approved_take": review.approved_take,
        "cut_take": review.cut_take,
        "note": review.note,
        "version": review.version,
        "spend": take_spend(manifest, shot, review.take),
        "gates": [attempt.model_dump(mode="json") for attempt in review.gates],
        "clip_checks": [check.model_dump(mode="json") for check in review.clip_checks],
        "history": [event.model_dump(mode="json") for event in review.history],
        **take_assets(manifest, shot, review.take),
    }


def episode_view(folder: ProjectFolder, storyboard: Storyboard, dailies: Dailies, manifest: Manifest) -> dict[str, Any]:
    """What the review page shows: every storyboard shot in order, its review state and its current take's assets."""
    return {
        "project": {"code": folder.project.code, "title": folder.project.title},
        "episode": storyboard.episode,
        "title": storyboard.title,
        "shots": [shot_view(shot, dailies.shot(shot.shot), manifest) for shot in storyboard.shots],
    }


def script_json(data: Any) -> str:
    """JSON that is safe inside a `<script>` element: `<`, `>` and `&` are written as \\u escapes."""
    text = json.dumps(data, ensure_ascii=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


STYLE = """
*{box-sizing:border-box}
[hidden]{display:none!important}
body{margin:0;background:#111317;color:#e6e6e6;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif}
header{display:flex;align-items:baseline;gap:16px;padding:16px 24px 8px;flex-wrap:wrap}
h1{margin:0;font-size:20px;font-weight:600}
h2{margin:0 0 8px;font-size:18px}
h3{margin:16px 0 6px;font-size:13px;text-transform:uppercase;letter-spacing:.05em;color:#8b919a}
#counts{color:#8b919a}
#message{margin-left:auto;color:#9ecbff;min-height:1.45em}
#message.error{color:#ff8f8f}
#timeline{display:flex;gap:3px;padding:8px 24px 16px;overflow-x:auto}
.tick{flex:1 0 34px;min-width:34px;height:40px;border:2px solid transparent;border-radius:4px;color:#111317;
  font:600 11px/1 system-ui,sans-serif;cursor:pointer}
.tick[aria-current=true]{border-color:#fff;outline:2px solid #111317;outline-offset:-4px}
.st-pending{background:#4a4f58;color:#c9ccd1}.st-generated{background:#5b9bd5}.st-needs_review{background:#e0b341}
.st-approved{background:#4caf6a}.st-retake{background:#e0605a}
.st-keyframes_review{background:#c77dd8}.st-keyframes_approved{background:#5fc4c4}
#card{display:grid;grid-template-columns:minmax(0,3fr) minmax(280px,2fr);gap:24px;padding:0 24px 24px}
#frames{display:flex;gap:8px;flex-wrap:wrap}
#frames figure{margin:0;flex:1 1 140px;max-width:260px}
#frames img{display:block;width:100%;height:auto;background:#000;border-radius:4px}
figcaption{color:#8b919a;font-size:12px;text-align:center}
#clip{display:block;margin-top:12px;max-width:100%;max-height:70vh;background:#000;border-radius:4px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:0}
dt{color:#8b919a}dd{margin:0}
.prompt{white-space:pre-wrap;word-break:break-word;background:#1b1e24;border-radius:6px;padding:8px 10px}
.actions{display:flex;gap:8px;margin:12px 0}
.actions button{flex:1;padding:8px;border-radius:6px;border:1px solid #2a2e36;background:#1b1e24;color:#e6e6e6;cursor:pointer}
.actions button[data-decision=approved]{border-color:#4caf6a}.actions button[data-decision=retake]{border-color:#e0605a}
.actions button[data-decision=needs_review]{border-color:#e0b341}
.actions button[data-decision=keyframes_approved]{border-color:#c77dd8}
kbd{font:11px monospace;color:#8b919a;margin-left:4px}
textarea{width:100%;min-height:64px;font:inherit;background:#1b1e24;color:#e6e6e6;border:1px solid #2a2e36;
  border-radius:6px;padding:6px}
.try{background:#1b1e24;border-radius:6px;padding:6px 10px;margin-bottom:6px}
.try ul{margin:2px 0;padding-left:18px}
.fail{color:#ff8f8f}.pass{color:#8fd19e}
#history{margin:0;padding-left:18px;color:#c9ccd1}
.empty{color:#8b919a}
footer{padding:0 24px 24px;color:#8b919a;font-size:12px}
"""

SCRIPT = """
"use strict";
const $ = (id) => document.getElementById(id);
let view = JSON.parse($("episode").textContent);
let index = 0;
let queue = Promise.resolve();
const LABEL = {pending: "pending", generated: "generated", needs_review: "needs review", approved: "approved", retake: "retake",
  keyframes_review: "keyframes to review", keyframes_approved: "keyframes approved"};
const KEYS = {a: "approved", r: "retake", n: "needs_review", k: "keyframes_approved"};
const MOVES = {ArrowLeft: -1, ArrowUp: -1, ArrowRight: 1, ArrowDown: 1};
const pad = (n) => String(n).padStart(2, "0");
const takeLabel = (n) => (n ? "T" + pad(n) : "none");
const asset = (name) => "/assets/" + encodeURIComponent(name);

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function message(text, isError) {
  $("message").textContent = text;
  $("message").className = isError ? "error" : "";
}

function renderTimeline() {
  const counts = {};
  $("timeline").replaceChildren(...view.shots.map((shot, i) => {
    counts[shot.status] = (counts[shot.status] || 0) + 1;
    const tick = el("button", "S" + pad(shot.shot), "tick st-" + shot.status);
    tick.type = "button";
    tick.title = "S" + pad(shot.shot) + " · " + LABEL[shot.status] + " · " + takeLabel(shot.take);
    tick.dataset.shot = shot.shot;
    tick.dataset.status = shot.status;
    tick.style.flexGrow = shot.duration_s;
    tick.setAttribute("aria-current", i === index ? "true" : "false");
    tick.addEventListener("click", () => select(i));
    return tick;
  }));
  $("counts").textContent = Object.keys(LABEL).filter((s) => counts[s]).map((s) => counts[s] + " " + LABEL[s]).join(" · ");
}

function renderFrames(shot) {
  const frames = shot.keyframes.map((frame) => {
    const figure = el("figure");
    const image = el("img");
    image.src = asset(frame.name);
    image.alt = frame.role + " frame of S" + pad(shot.shot);
    figure.append(image, el("figcaption", frame.role));
    return figure;
  });
  const none = el("p", "no keyframes for " + takeLabel(shot.take) + " yet", "empty");
  $("frames").replaceChildren(...(frames.length ? frames : [none]));
  const clip = $("clip");
  if (clip.dataset.name !== (shot.clip || "")) {
    clip.dataset.name = shot.clip || "";
    if (shot.clip) clip.src = asset(shot.clip);
    else clip.removeAttribute("src");
    clip.load();
  }
  clip.hidden = !shot.clip;
}

function renderGates(shot) {
  const tries = shot.gates.map((attempt) => {
    const box = el("div", null, "try");
    const head = [takeLabel(attempt.take), "try " + attempt.attempt, "seed " + attempt.seed, "route " + attempt.route];
    box.append(el("div", head.join(" · ")));
    box.append(el("div", attempt.gate1.length ? "Gate 1: failed" : "Gate 1: passed", attempt.gate1.length ? "fail" : "pass"));
    if (attempt.gate1.length) {
      const failures = el("ul");
      failures.append(...attempt.gate1.map((line) => el("li", line)));
      box.append(failures);
    }
    const scores = Object.entries(attempt.scores).map(([role, score]) => role + " " + Number(score).toFixed(2));
    box.append(el("div", "Gate 2: " + (scores.length ? scores.join(" · ") : "not scored")));
    if (attempt.reasons.length) {
      const reasons = el("ul");
      reasons.append(...attempt.reasons.map((line) => el("li", line)));
      box.append(reasons);
    }
    return box;
  });
  const checks = shot.clip_checks.map((check) => {
    const box = el("div", null, "try");
    box.append(el("div", ["Clip QC", takeLabel(check.take), "try " + check.attempt, "seed " + check.seed].join(" · ")));
    box.append(el("div", check.passed ? "Clip QC: passed" : "Clip QC: failed", check.passed ? "pass" : "fail"));
    if (check.failures.length) {
      const failures = el("ul");
      failures.append(...check.failures.map((line) => el("li", line)));
      box.append(failures);
    }
    return box;
  });
  const all = tries.concat(checks);
  $("gates").replaceChildren(...(all.length ? all : [el("p", "no gate results yet", "empty")]));
}

function renderHistory(shot) {
  const events = shot.history.map((event) => {
    const item = el("li", event.at + " · " + LABEL[event.status] + " · " + takeLabel(event.take) + " · by " + event.by);
    if (event.note) item.append(el("div", event.note, "note"));
    return item;
  });
  $("history").replaceChildren(...(events.length ? events : [el("li", "nothing yet", "empty")]));
}

function renderCard(keepNote) {
  const shot = view.shots[index];
  $("card").dataset.shot = shot.shot;
  $("shot-title").textContent = "S" + pad(shot.shot) + " · " + LABEL[shot.status];
  $("approach").textContent = shot.approach;
  $("characters").textContent = shot.characters.length ? shot.characters.join(", ") : "no characters";
  $("location").textContent = shot.location;
  $("duration").textContent = shot.duration_s + " s";
  const approved = "approved " + takeLabel(shot.approved_take) + ", cut uses " + takeLabel(shot.cut_take);
  $("take").textContent = takeLabel(shot.take) + " (" + approved + ")";
  $("spend").textContent = shot.spend;
  $("prompt").textContent = shot.prompt;
  if (!keepNote) $("note").value = shot.note || "";
  renderFrames(shot);
  renderGates(shot);
  renderHistory(shot);
}

function select(i) {
  index = Math.min(Math.max(i, 0), view.shots.length - 1);
  renderTimeline();
  renderCard(false);
  document.querySelector(".tick[aria-current=true]").scrollIntoView({block: "nearest", inline: "nearest"});
  history.replaceState(null, "", "#S" + pad(view.shots[index].shot));
}

async function reload() {
  const fresh = await (await fetch("/api/episode")).json();
  const current = view.shots[index].shot;
  view = fresh;
  index = Math.max(0, view.shots.findIndex((s) => s.shot === current));
  renderTimeline();
  renderCard(true);
}

async function post(shot, decision, note) {
  try {
    const response = await fetch("/api/decision", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({shot: shot.shot, decision: decision, note: note, version: shot.version}),
    });
    const body = await response.json();
    if (!response.ok) {
      message(body.error, true);
      if (response.status === 409) await reload();
      return;
    }
    const current = view.shots[index].shot;
    view = body;
    index = Math.max(0, view.shots.findIndex((s) => s.shot === current));
    renderTimeline();
    renderCard(true);
    message("S" + pad(shot.shot) + ": " + LABEL[decision], false);
  } catch (error) {
    message("could not save S" + pad(shot.shot) + ": " + error.message, true);
  }
}

function decide(decision) {
  const shot = view.shots[index];
  const text = $("note").value;
  const note = text === (shot.note || "") ? null : text;
  message("saving S" + pad(shot.shot) + "…", false);
  queue = queue.then(() => post(shot, decision, note));
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target.closest("textarea, input, select, [contenteditable]")) {
    if (event.key === "Escape") event.target.blur();
    return;
  }
  if (Object.hasOwn(MOVES, event.key)) {
    event.preventDefault();
    select(index + MOVES[event.key]);
  } else if (Object.hasOwn(KEYS, event.key.toLowerCase())) {
    event.preventDefault();
    decide(KEYS[event.key.toLowerCase()]);
  }
});
document.querySelectorAll(".actions button").forEach((button) => {
  button.addEventListener("click", () => decide(button.dataset.decision));
});
const start = view.shots.findIndex((s) => "#S" + pad(s.shot) === location.hash);
select(start < 0 ? 0 : start);
"""


def dailies_html(view: dict[str, Any]) -> str:
    """The dailies page: the view embedded as escaped JSON, all user text set by the script through textContent."""
    episode = f"episode {view['episode']:03d}"
    title = escape(f"{view['project']['title']} · {episode} · {view['title']} · dailies")
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{title}</title><style>{STYLE}</style></head>\n"
        f'<body><header><h1>{title}</h1><span id="counts"></span><span id="message" role="status"></span></header>\n'
        '<nav id="timeline" aria-label="shots"></nav>\n'
        '<main id="card"><section><div id="frames"></div><video id="clip" controls preload="auto" hidden></video></section>\n'
        '<section><h2 id="shot-title"></h2><dl>'
        '<dt>approach</dt><dd id="approach"></dd><dt>characters</dt><dd id="characters"></dd>'
        '<dt>location</dt><dd id="location"></dd><dt>duration</dt><dd id="duration"></dd><dt>take</dt><dd id="take"></dd>'
        '<dt>spend</dt><dd id="spend"></dd></dl>\n'
        '<h3>Prompt</h3><p id="prompt" class="prompt"></p>\n'
        '<div class="actions"><button type="button" data-decision="approved">Approve<kbd>A</kbd></button>'
        '<button type="button" data-decision="retake">Retake<kbd>R</kbd></button>'
        '<button type="button" data-decision="needs_review">Needs review<kbd>N</kbd></button>'
        '<button type="button" data-decision="keyframes_approved">Approve keyframes<kbd>K</kbd></button></div>\n'
        '<label for="note">Note (saved with the next decision; Esc leaves the box)</label><textarea id="note"></textarea>\n'
        '<h3>Gates</h3><div id="gates"></div>\n'
        '<h3>History</h3><ol id="history"></ol></section></main>\n'
        "<footer>← → or ↑ ↓ move between shots · A approve · R retake · N needs review</footer>\n"
        f'<script type="application/json" id="episode">{script_json(view)}</script>\n'
        f"<script>{SCRIPT}</script></body></html>\n"
    )
