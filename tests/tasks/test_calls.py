"""Provider calls from stages: content rejection goes to the fallback, and is never submitted twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from reelflow.schemas.errors import BadRequest, ContentRejected, ContractError
from reelflow.schemas.load import base_name, load_project, load_storyboard
from reelflow.schemas.requests import Generation, ImageRequest, _Request
from reelflow.tasks import calls
from reelflow.tasks.job import ShotJob, shot_seed

from projects import PROJECT, write_project


class FakeProvider:
    def __init__(self, name: str, rejects: bool) -> None:
        self.name, self.rejects, self.requests = name, rejects, []
        self.default_models = {"keyframes": f"{name}/image-model"}

    def cache_params(self, request: _Request) -> dict[str, Any]:
        return request.params()

    def estimate(self, request: _Request) -> float:
        return 0.02

    def check(self, request: _Request) -> None:
        if isinstance(request, ImageRequest) and request.width > 4096:
            raise BadRequest(f"width: {request.width}: at most 4096", provider=self.name)

    def generate_image(self, request: ImageRequest, out: Path, *, ticket: object = None) -> Generation:
        self.requests.append(request)
        if self.rejects:
            raise ContentRejected("fake: content_policy_violation", provider=self.name)
        Image.new("RGB", (request.width, request.height), (9, 9, 9)).save(out)
        return Generation(provider=self.name, model=request.model, files=[out], cost_usd=0.02, request_id="req-1")


def job_for(tmp_path: Path, providers: dict[str, Any]) -> ShotJob:
    folder = load_project(write_project(tmp_path, project=PROJECT | {"providers": providers}))
    board = load_storyboard(folder, 1)
    shot = board.shots[1]
    return ShotJob(run="r", root=folder.root, project=folder.project, episode=1, shot=shot,
                   name=base_name(folder.project, board, shot), seed=shot_seed("TST", 1, shot))


def call(job: ShotJob, width: int = 16) -> calls.Outcome:
    return calls.call_provider(
        job, stage="keyframes", version=1, capability="generate_image", ext="png", inputs=[],
        build=lambda model: ImageRequest(model=model, prompt="p", width=width, height=16, seed=job.seed),
    )


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> dict[str, FakeProvider]:
    providers = {"fal": FakeProvider("fal", rejects=True), "runpod": FakeProvider("runpod", rejects=False)}
    monkeypatch.setattr(calls, "provider_for", lambda job, name: providers[name])
    return providers


def test_rejected_content_goes_to_the_fallback_once(tmp_path: Path, fakes: dict[str, FakeProvider]) -> None:
    job = job_for(tmp_path, {"default": "local", "keyframes": {"use": "fal", "fallback": "runpod", "model": "fal/special"}})
    outcome = call(job)
    assert [r.model for r in fakes["fal"].requests] == ["fal/special"]
    assert [r.model for r in fakes["runpod"].requests] == ["runpod/image-model"]
    assert (outcome.provenance.provider, outcome.provenance.model, outcome.provider_calls) == ("runpod", "runpod/image-model", 1)

    again = call(job)
    assert len(fakes["fal"].requests) == 1, "a rejected request is not submitted again"
    assert len(fakes["runpod"].requests) == 1 and again.provider_calls == 0


def test_without_fallback_the_rejection_is_the_error(tmp_path: Path, fakes: dict[str, FakeProvider]) -> None:
    job = job_for(tmp_path, {"keyframes": "fal"})
    with pytest.raises(ContentRejected, match="content_policy_violation"):
        call(job)
    with pytest.raises(ContentRejected, match="recorded earlier"):
        call(job)
    assert len(fakes["fal"].requests) == 1


def test_a_request_the_service_schema_refuses_is_a_contract_error_before_anything_is_paid(
    tmp_path: Path, fakes: dict[str, FakeProvider]
) -> None:
    job = job_for(tmp_path, {"keyframes": "runpod"})
    with pytest.raises(ContractError, match=r"^shot 2: keyframes: runpod: width: 5000: at most 4096$"):
        call(job, width=5000)
    assert fakes["runpod"].requests == [] and job.ledger.rows() == []
