from pathlib import Path

from reelflow.schemas.requests import EditRequest, VideoRequest


def test_input_files_are_not_params() -> None:
    edit = EditRequest(model="m", image=Path("/a/x.png"), prompt="p", references=(Path("/k/1.png"), Path("/k/2.png")))
    assert edit.input_paths() == {"image": Path("/a/x.png"), "references[0]": Path("/k/1.png"), "references[1]": Path("/k/2.png")}
    assert "image" not in edit.params() and "references" not in edit.params()
    assert edit.params()["prompt"] == "p"
    video = VideoRequest(model="m", first=Path("f.png"), last=Path("l.png"), prompt="p", num_frames=49, fps=16,
                         width=720, height=1280)
    assert set(video.input_paths()) == {"first", "last"} and video.params()["num_frames"] == 49
