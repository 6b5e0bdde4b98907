"""Asset names: format and parse round-trip, and non-matching names are errors."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reelflow.schemas.errors import ContractError
from reelflow.schemas.names import AssetName

codes = st.from_regex(r"[A-Z][A-Z0-9]{1,5}", fullmatch=True)
characters = st.from_regex(r"[A-Z0-9]{2,12}", fullmatch=True)
suffixes = st.none() | st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True)
extensions = st.none() | st.sampled_from(["png", "mp4", "jpg", "webp"])


@st.composite
def asset_names(draw: st.DrawFn) -> AssetName:
    digits = draw(st.sampled_from([2, 3]))
    return AssetName(
        project=draw(codes),
        episode=draw(st.integers(1, 999)),
        shot=draw(st.integers(1, 10**digits - 1)),
        take=draw(st.integers(1, 99)),
        character=draw(characters),
        suffix=draw(suffixes),
        ext=draw(extensions),
        shot_digits=digits,
    )


@given(asset_names())
def test_parse_of_format_gives_back_the_fields(name: AssetName) -> None:
    assert AssetName.parse(name.format()) == name


@given(asset_names())
def test_format_of_parse_gives_back_the_text(name: AssetName) -> None:
    text = name.format()
    assert AssetName.parse(text).format() == text


def test_known_name() -> None:
    name = AssetName.parse("LEV_EP001_S07_T01_JINX_first.png")
    assert (name.project, name.episode, name.shot, name.take, name.character, name.suffix, name.ext) == (
        "LEV", 1, 7, 1, "JINX", "first", "png")
    assert name.base == "LEV_EP001_S07_T01_JINX"
    assert name.with_(suffix="clip", ext="mp4").format() == "LEV_EP001_S07_T01_JINX_clip.mp4"
    assert name.with_(take=2).format() == "LEV_EP001_S07_T02_JINX"


@pytest.mark.parametrize("text", [
    "lev_EP001_S07_T01_JINX.png",      # lower-case project
    "LEV_EP01_S07_T01_JINX.png",       # two-digit episode
    "LEV_EP001_S7_T01_JINX.png",       # one-digit shot
    "LEV_EP001_S07_T1_JINX.png",       # one-digit take
    "LEV_EP001_S07_T01_jinx.png",      # lower-case character
    "LEV_EP001_S07_T01_JINX_First.png",  # upper-case suffix
    "LEV_EP001_S07_T01_J.png",         # one-letter character
    "LEV_EP001_S07_T01_JINX_first.PNG",  # upper-case extension
    "LEV_EP001_S07_T01_JINX_first.png.bak",
    "",
])
def test_non_matching_names_are_errors(text: str) -> None:
    with pytest.raises(ContractError):
        AssetName.parse(text)


@pytest.mark.parametrize("fields", [
    {"shot": 100, "shot_digits": 2},
    {"take": 0},
    {"take": 100},
    {"episode": 0},
    {"episode": 1000},
    {"character": "E"},
    {"suffix": "First"},
])
def test_fields_that_cannot_be_formatted_are_errors(fields: dict) -> None:
    base = {"project": "LEV", "episode": 1, "shot": 1, "take": 1, "character": "JINX"}
    with pytest.raises(ContractError):
        AssetName(**(base | fields))
