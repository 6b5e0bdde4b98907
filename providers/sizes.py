"""The output size a request asks a provider for, which is what image services bill by."""

from __future__ import annotations

from reelflow.media.probe import probe_image
from reelflow.schemas.errors import MediaError
from reelflow.schemas.pricing import request_size
from reelflow.schemas.requests import EditRequest, _Request


def billed_size(request: _Request) -> tuple[int, int] | None:
    """The requested output size; an edit's may follow its input image's. None where it is unknown."""
    if not isinstance(request, EditRequest):
        return request_size(request)
    try:
        source = probe_image(request.image)
    except MediaError:
        return request_size(request)
    return request.output_size((source.width, source.height))
