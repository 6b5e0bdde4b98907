"""The dailies server and `reelflow dailies` without a browser: the view, the API, asset serving, escaping, the CLI."""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import signal
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from PIL import Image

from reelflow.schemas.assets import Manifest, ManifestEntry, MediaInfo
from reelflow.schemas.dailies import KeyframeTry
from reelflow.schemas.load import load_project, load_storyboard
from reelflow.state.dailies import changing_dailies, now
from reelflow.web.dailies_page import dailies_html, script_json
from reelflow.web.dailies_server import DailiesServer, byte_range

from checks import call
from conftest import REELFLOW, run_cli
from projects import dailies_path, saved, storyboard, write_project

HOSTILE = '</script><script>alert(1)</script> & "q" <!--'
CLIP_BYTES = bytes(range(256)) * 40


def write_asset(folder: Path, name: str, shot: int, take: int) -> ManifestEntry:
    """A real file under the asset name, and the manifest entry a render would record for it."""
    path = folder / name
    if name.endswith(".png"):
        Image.new("RGB", (24, 40), (shot * 40, take * 60, 90)).save(path)
        media = MediaInfo(kind="image", width=24, height=40)
    else:
        path.write_bytes(CLIP_BYTES)
        media = MediaInfo(kind="video", width=24, height=40, frames=16, fps=16, duration_s=1.0, codec="h264")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return ManifestEntry(stage="keyframes", stage_version=1, provider="local", model="m", name=name, shot=shot, take=take,
                         sha256=sha, media=media)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Shot 1 (triptych) and 3 rendered as take 1, shot 4 as takes 1 and 2; shot 2 pending. No Prefect needed."""
    board = storyboard()
    board["shots"][0]["hero_frame"]["prompt"] = f"Ana at the throttle {HOSTILE}"
    root = write_project(tmp_path / "proj", board)
    folder = root / "storyboards" / "assets" / "ep_001"
    folder.mkdir(parents=True)
    files = [(1, 1, suffix, "ANA") for suffix in ("strip.png", "last.png", "hero.png", "first.png", "seg1.mp4", "clip.mp4")]
    files += [(3, 1, "first.png", "ENV"), (3, 1, "clip.mp4", "ENV")]
    files += [(4, take, suffix, "ANA") for take in (1, 2) for suffix in ("first.png", "clip.mp4")]
    entries = [write_asset(folder, f"TST_EP001_S{shot:02d}_T{take:02d}_{who}_{suffix}", shot, take)
               for shot, take, suffix, who in files]
    (folder / "manifest.json").write_text(Manifest(project="TST", episode=1, assets=entries).model_dump_json())
    loaded = load_project(root)
    with changing_dailies(loaded, load_storyboard(loaded, 1)) as dailies:
        dailies.shot(1).rendered(1, "pass", at=now())
        dailies.shot(3).rendered(1, "review", at=now())
        dailies.shot(3).gates.append(KeyframeTry(take=1, attempt=2, seed=7, route="review", gate1=["first: blurry"],
                                                 scores={"first": 0.55}, reasons=["face unclear <i>"]))
        dailies.shot(4).rendered(1, "pass", at=now())
        dailies.shot(4).rendered(2, "pass", at=now())
    return root


def post(server: DailiesServer, body: object) -> tuple[int, dict]:
    status, _, data = call(server, "POST", "/api/decision", json.dumps(body).encode(), {"Content-Type": "application/json"})
    return status, json.loads(data)


def test_the_view_lists_every_shot_with_its_current_take(server: DailiesServer) -> None:
    status, headers, body = call(server, "GET", "/api/episode")
    assert status == 200 and headers["Content-Type"] == "application/json"
    view = json.loads(body)
    assert (view["project"], view["episode"], view["title"]) == ({"code": "TST", "title": "Test Reel"}, 1, "Pilot")
    shots = {shot["shot"]: shot for shot in view["shots"]}
    assert [shot["shot"] for shot in view["shots"]] == [1, 2, 3, 4]
    one = shots[1]
    assert (one["approach"], one["characters"], one["location"], one["duration_s"]) == (
        "triptych_split_flf", ["ANA", "BO"], "DECK", 2.5)
    assert one["prompt"] == f"Ana at the throttle {HOSTILE}"
    assert one["keyframes"] == [{"role": r, "name": f"TST_EP001_S01_T01_ANA_{r}.png"} for r in ("first", "hero", "last")]
    assert one["clip"] == "TST_EP001_S01_T01_ANA_clip.mp4" and one["status"] == "generated"
    assert (shots[2]["status"], shots[2]["keyframes"], shots[2]["clip"], shots[2]["history"]) == ("pending", [], None, [])
    assert shots[2]["prompt"] == "Bo kneels by a crate"
    three = shots[3]
    assert three["status"] == "needs_review"
    assert three["gates"] == [{"take": 1, "attempt": 2, "seed": 7, "route": "review", "gate1": ["first: blurry"],
                               "scores": {"first": 0.55}, "reasons": ["face unclear <i>"]}]
    four = shots[4]
    assert (four["take"], four["approved_take"], four["cut_take"]) == (2, None, 2)
    assert four["keyframes"] == [{"role": "first", "name": "TST_EP001_S04_T02_ANA_first.png"}]
    assert four["clip"] == "TST_EP001_S04_T02_ANA_clip.mp4"
    assert [(event["status"], event["take"], event["by"]) for event in four["history"]] == [
        ("generated", 1, "render"), ("generated", 2, "render")]


def test_a_decision_is_saved_and_the_view_is_read_from_disk(project: Path, server: DailiesServer) -> None:
    status, view = post(server, {"shot": 3, "decision": "approved", "note": "good <b>take</b>"})
    assert status == 200
    shot = next(s for s in view["shots"] if s["shot"] == 3)
    assert (shot["status"], shot["approved_take"], shot["cut_take"], shot["note"]) == ("approved", 1, 1, "good <b>take</b>")
    on_disk = saved(project)[3]
    assert (on_disk["status"], on_disk["approved_take"], on_disk["note"]) == ("approved", 1, "good <b>take</b>")
    last = on_disk["history"][-1]
    assert (last["status"], last["take"], last["by"], last["note"]) == ("approved", 1, "dailies page", "good <b>take</b>")

    status, view = post(server, {"shot": 3, "decision": "retake"})
    assert status == 200
    on_disk = saved(project)[3]
    assert (on_disk["status"], on_disk.get("approved_take"), on_disk["note"]) == ("retake", None, "good <b>take</b>")
    assert [e["status"] for e in on_disk["history"] if e["by"] == "dailies page"] == ["approved", "retake"]

    loaded = load_project(project)
    with changing_dailies(loaded, load_storyboard(loaded, 1)) as dailies:
        dailies.shot(4).decide("approved", at=now(), by="cli")
    _, _, body = call(server, "GET", "/api/episode")
    four = json.loads(body)["shots"][3]
    assert (four["status"], four["approved_take"]) == ("approved", 2)


def test_held_keyframes_are_shown_raw_and_approved_from_the_page(project: Path, server: DailiesServer) -> None:
    """A shot stopped at its keyframes shows its raw frames; its K decision approves them, not the take."""
    folder = project / "storyboards" / "assets" / "ep_001"
    entry = write_asset(folder, "TST_EP001_S02_T01_BO_rawfirst.png", 2, 1)
    manifest = Manifest.model_validate_json((folder / "manifest.json").read_bytes())
    (folder / "manifest.json").write_text(manifest.model_copy(update={"assets": [*manifest.assets, entry]}).model_dump_json())
    loaded = load_project(project)
    with changing_dailies(loaded, load_storyboard(loaded, 1)) as dailies:
        dailies.shot(2).held(1, {"first": entry.sha256}, at=now())
    _, _, body = call(server, "GET", "/api/episode")
    two = json.loads(body)["shots"][1]
    assert (two["status"], two["keyframes"]) == ("keyframes_review",
                                                 [{"role": "first", "name": "TST_EP001_S02_T01_BO_rawfirst.png"}])
    assert post(server, {"shot": 2, "decision": "approved"})[0] == 409, "no video yet: the take cannot be approved"
    status, view = post(server, {"shot": 2, "decision": "keyframes_approved"})
    assert status == 200
    on_disk = saved(project)[2]
    assert (on_disk["status"], on_disk["take"], on_disk.get("approved_take")) == ("keyframes_approved", 1, None)
    assert on_disk["keyframes"] == {"take": 1, "frames": {"first": entry.sha256}, "approved": True}
    assert post(server, {"shot": 1, "decision": "keyframes_approved"})[0] == 409, "shot 1 holds no keyframes"
    assert 'data-decision="keyframes_approved"' in dailies_html(view)


def test_a_decision_on_a_shot_that_changed_since_the_page_showed_it_is_refused(project: Path, server: DailiesServer) -> None:
    _, _, body = call(server, "GET", "/api/episode")
    shown = json.loads(body)["shots"][3]
    assert (shown["shot"], shown["version"]) == (4, 2)
    # A render finishes take 3 of shot 4 while the page still shows take 2.
    loaded = load_project(project)
    with changing_dailies(loaded, load_storyboard(loaded, 1)) as dailies:
        dailies.shot(4).rendered(3, "pass", at=now())
    before = dailies_path(project).read_bytes()
    status, answer = post(server, {"shot": 4, "decision": "approved", "version": shown["version"]})
    assert status == 409
    assert answer["error"].startswith("shot 4: changed since it was shown (now T03 generated by render at ")
    assert answer["error"].endswith("approved not recorded, look again")
    assert dailies_path(project).read_bytes() == before
    status, view = post(server, {"shot": 4, "decision": "approved", "version": 3})
    assert status == 200 and view["shots"][3]["approved_take"] == 3 and view["shots"][3]["version"] == 4


@pytest.mark.parametrize(("body", "error"), [
    (b"not json", "body: Invalid JSON"),
    (b"[1]", "body: Input should be an object"),
    (b'{"shot": "3", "decision": "approved"}', "shot: Input should be a valid integer"),
    (b'{"shot": true, "decision": "approved"}', "shot: Input should be a valid integer"),
    (b'{"shot": 3, "decision": "maybe"}',
     "decision: Input should be 'approved', 'retake', 'needs_review' or 'keyframes_approved'"),
    (b'{"shot": 3}', "decision: Field required"),
    (b'{"shot": 3, "decision": "approved", "note": 5}', "note: Input should be a valid string"),
    (b'{"shot": 3, "decision": "approved", "by": "me"}', "by: Extra inputs are not permitted"),
    (b'{"shot": 9, "decision": "approved"}', "shot: 9 is not in episode 1"),
])
def test_a_bad_body_is_400_with_one_line_and_changes_nothing(
    project: Path, server: DailiesServer, body: bytes, error: str
) -> None:
    before = dailies_path(project).read_bytes()
    status, headers, data = call(server, "POST", "/api/decision", body, {"Content-Type": "application/json"})
    assert status == 400 and headers["Content-Type"] == "application/json"
    message = json.loads(data)["error"]
    assert message.startswith(error) and "\n" not in message
    assert dailies_path(project).read_bytes() == before


def test_a_pending_shot_or_a_wrong_request_cannot_decide(project: Path, server: DailiesServer) -> None:
    before = dailies_path(project).read_bytes()
    assert post(server, {"shot": 2, "decision": "approved"}) == (
        409, {"error": "shot 2: has no take to review yet (status pending); render it first"})
    body = b'{"shot": 3, "decision": "approved"}'
    assert call(server, "POST", "/api/decision", body, {"Content-Type": "text/plain"})[0] == 400
    assert call(server, "POST", "/api/decision", b"", {"Content-Type": "application/json"})[0] == 400
    assert call(server, "POST", "/api/episode", body, {"Content-Type": "application/json"})[0] == 404
    assert call(server, "GET", "/api/episode", headers={"Host": "attacker.example:80"})[0] == 403
    assert dailies_path(project).read_bytes() == before


def test_assets_are_served_by_plain_asset_name_only(project: Path, server: DailiesServer) -> None:
    folder = project / "storyboards" / "assets" / "ep_001"
    status, headers, body = call(server, "GET", "/assets/TST_EP001_S03_T01_ENV_first.png")
    assert (status, headers["Content-Type"]) == (200, "image/png")
    assert body == (folder / "TST_EP001_S03_T01_ENV_first.png").read_bytes()
    status, headers, body = call(server, "GET", "/assets/TST_EP001_S03_T01_ENV_clip.mp4")
    assert (status, headers["Content-Type"], headers["Accept-Ranges"], body) == (200, "video/mp4", "bytes", CLIP_BYTES)
    (project / "storyboards" / "assets" / "TST_EP001_S01_T01_ANA_first.png").write_bytes(b"outside")
    for path in ("/assets/../project.json", "/assets/%2e%2e%2fproject.json", "/assets/..%2fproject.json",
                 "/assets/..%2fTST_EP001_S01_T01_ANA_first.png", "/assets/manifest.json", "/assets/",
                 "/assets/TST_EP001_S09_T01_ANA_first.png", "/assets/TST_EP001_S03_T01_ENV_first.PNG",
                 "/assets/%2Fetc%2Fpasswd", "/project.json", "/storyboards/dailies_ep_001.json"):
        status, _, body = call(server, "GET", path)
        assert status == 404, path
        assert b"Test Reel" not in body and b"outside" not in body


def test_a_byte_range_of_a_clip_is_206(server: DailiesServer) -> None:
    path = "/assets/TST_EP001_S03_T01_ENV_clip.mp4"
    status, headers, body = call(server, "GET", path, headers={"Range": "bytes=100-199"})
    assert (status, headers["Content-Range"], body) == (206, f"bytes 100-199/{len(CLIP_BYTES)}", CLIP_BYTES[100:200])
    status, headers, body = call(server, "GET", path, headers={"Range": "bytes=-10"})
    assert (status, body) == (206, CLIP_BYTES[-10:])
    status, _, _ = call(server, "GET", path, headers={"Range": f"bytes={len(CLIP_BYTES)}-"})
    assert status == 416
    assert byte_range("bytes=0-", 10) == (0, 9) and byte_range("bytes=5-99", 10) == (5, 9)
    assert byte_range(None, 10) is None and byte_range("bytes=0-1,4-5", 10) is None and byte_range("items=1-2", 10) is None


def test_the_page_embeds_user_text_that_cannot_break_out(server: DailiesServer) -> None:
    status, headers, body = call(server, "GET", "/")
    assert (status, headers["Content-Type"]) == (200, "text/html; charset=utf-8")
    page = body.decode()
    assert page.count("<script") == 2 and page.count("</script>") == 2 and "<!--" not in page
    assert HOSTILE not in page and "http://" not in page and "https://" not in page
    embedded = re.search(r'<script type="application/json" id="episode">(.*?)</script>', page, re.S)
    assert embedded is not None
    view = json.loads(embedded[1])
    assert view["shots"][0]["prompt"] == f"Ana at the throttle {HOSTILE}"
    assert "innerHTML" not in page and "insertAdjacentHTML" not in page and "document.write" not in page


def test_the_page_title_is_escaped_and_script_json_escapes_markup() -> None:
    view = {"project": {"code": "TST", "title": "<i>Reel</i> & co"}, "episode": 1, "title": "</title>", "shots": []}
    page = dailies_html(view)
    assert "&lt;i&gt;Reel&lt;/i&gt; &amp; co" in page and "&lt;/title&gt;" in page and "<i>" not in page
    assert script_json({"a": "</script>&<!--"}) == '{"a": "\\u003c/script\\u003e\\u0026\\u003c!--"}'
    assert json.loads(script_json({"a": "</script>&<!--"})) == {"a": "</script>&<!--"}


def test_cli_decides_saves_and_prints_the_statuses(project: Path) -> None:
    result = run_cli("dailies", str(project), "--episode", "1", "--approve", "1,4", "--retake", "3", "--note", "<b>ok</b>")
    assert result.code == 0, result.stderr
    assert re.search(r"1\s+│\s+approved\s+│\s+T01\s+│\s+T01", result.stdout)
    assert "<b>ok</b>" in result.stdout
    shots = saved(project)
    assert [(shots[n]["status"], shots[n].get("approved_take")) for n in (1, 2, 3, 4)] == [
        ("approved", 1), ("pending", None), ("retake", None), ("approved", 2)]
    assert all(shots[n]["history"][-1]["by"] == "cli" and shots[n]["note"] == "<b>ok</b>" for n in (1, 3, 4))

    result = run_cli("dailies", str(project), "--episode", "1", "--review", "3", "--json")
    assert result.code == 0, result.stderr
    assert result.json() == {"episode": 1, "dailies": str(dailies_path(project)), "shots": [
        {"shot": 1, "status": "approved", "take": 1, "approved_take": 1},
        {"shot": 2, "status": "pending", "take": 1, "approved_take": None},
        {"shot": 3, "status": "needs_review", "take": 1, "approved_take": None},
        {"shot": 4, "status": "approved", "take": 2, "approved_take": 2},
    ]}
    assert saved(project)[3]["note"] == "<b>ok</b>"
    before = dailies_path(project).read_bytes()
    alone = run_cli("dailies", str(project), "--episode", "1", "--json")
    assert alone.code == 0 and alone.json() == result.json()
    assert dailies_path(project).read_bytes() == before


@pytest.mark.parametrize(("args", "error"), [
    (("--approve", "1,2"), "error: dailies_ep_001.json: shot 2: has no take to review yet (status pending)"),
    (("--approve", "1", "--retake", "9"), "error: storyboard_ep_001.json: shot 9 is not in the storyboard"),
    (("--approve", "1,3", "--review", "3"), "error: shot 3: given as both approved and needs_review"),
    (("--retake", "1,x"), "error: --retake: '1,x' must be shot numbers"),
    (("--note", "hi"), "error: --note: give --approve, --retake, --review or --approve-keyframes with it"),
])
def test_cli_errors_are_one_line_exit_2_and_change_nothing(project: Path, args: tuple[str, ...], error: str) -> None:
    before = dailies_path(project).read_bytes()
    result = run_cli("dailies", str(project), "--episode", "1", *args)
    assert result.code == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith(error), result.stderr
    assert dailies_path(project).read_bytes() == before


def test_cli_serves_the_page_until_ctrl_c(project: Path) -> None:
    command = [str(REELFLOW), "dailies", str(project), "--episode", "1", "--port", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        try:
            line = process.stdout.readline()
            assert line.startswith("dailies: http://127.0.0.1:"), line + process.stderr.read()
            url = urlsplit(line.split()[1])
            connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
            connection.request("GET", "/api/episode")
            response = connection.getresponse()
            assert response.status == 200 and json.loads(response.read())["shots"][0]["shot"] == 1
            connection.close()
        finally:
            process.send_signal(signal.SIGINT)
        try:
            out, err = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError("the server did not stop on Ctrl-C") from None
    assert process.returncode == 0 and "stopped" in out and err == ""


def test_a_broken_file_on_disk_is_a_500_with_one_line(project: Path, server: DailiesServer) -> None:
    dailies_path(project).write_text('{"project": "TST", "episode": 1, "shots": [{"shot": 1, "status": "lost"}]}')
    status, _, body = call(server, "GET", "/api/episode")
    error = json.loads(body)["error"]
    assert status == 500 and error.startswith("dailies_ep_001.json: shots.0.status: ") and "\n" not in error
    (project / "storyboards" / "assets" / "ep_001" / "manifest.json").write_text("{}")
    status, _, body = call(server, "GET", "/")
    assert status == 500 and json.loads(body)["error"].startswith("dailies_ep_001.json: ")
