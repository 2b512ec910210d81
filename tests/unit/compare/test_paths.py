from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wiretape.compare.noise import compile_noise
from wiretape.compare.paths import Concrete, PathSyntaxError, Step, format_path, parse_path

TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


@pytest.mark.parametrize(
    ("text", "concrete", "expected"),
    [
        ("status", ("status",), True),
        ("status", ("body",), False),
        ("header.X-Request-Id", ("header", "x-request-id"), True),
        ("header.x-request-id", ("header", "X-Request-ID"), True),
        ("header.X-Request-Id", ("header", "x-request"), False),
        ("header.*", ("header", "anything"), True),
        ("header.*", ("status",), False),
        ('header["X-Odd"]', ("header", "x-odd"), True),
        ("body", ("body",), True),
        ("body", ("body", "a"), False),
        ("body.a", ("body", "a"), True),
        ("body.a", ("body", "b"), False),
        ("body.a.b", ("body", "a", "b"), True),
        ("body.a.b", ("body", "a"), False),
        ("body.items[0]", ("body", "items", 0), True),
        ("body.items[0]", ("body", "items", 1), False),
        ("body.items[0]", ("body", "items", "0"), False),
        ("body.0", ("body", "0"), True),
        ("body.0", ("body", 0), False),
        ("body[1].id", ("body", 1, "id"), True),
        ("body.items[*]", ("body", "items", 7), True),
        ("body.items[*]", ("body", "items", "k"), False),
        ("body.items[*].id", ("body", "items", 3, "id"), True),
        ("body.*", ("body", "x"), True),
        ("body.*", ("body", 0), False),
        ("body.*.id", ("body", "x", "id"), True),
        ("body..id", ("body", "id"), True),
        ("body..id", ("body", "a", 2, "b", "id"), True),
        ("body..id", ("body", "a", "id", "x"), False),
        ("body..id", ("body", "ids"), False),
        ("body..meta.etag", ("body", "x", "meta", "etag"), True),
        ("body..meta.etag", ("body", "x", "meta", "y", "etag"), False),
        ("body..[0]", ("body", "a", "b", 0), True),
        ("body..*", ("body", "a", "b"), True),
        ('body["a.b"]', ("body", "a.b"), True),
        ('body["a.b"]', ("body", "a", "b"), False),
        ('body["*"]', ("body", "*"), True),
        ('body["*"]', ("body", "x"), False),
        ('body["say \\"hi\\""]', ("body", 'say "hi"'), True),
        ("body.a..b..c", ("body", "a", "x", "b", "y", "z", "c"), True),
        ("body.prénom", ("body", "prénom"), True),
    ],
)
def test_matches(text: str, concrete: Concrete, expected: bool) -> None:
    assert parse_path(text).matches(concrete) is expected


@pytest.mark.parametrize(
    ("text", "concrete", "expected"),
    [
        ("body.a", ("body", "a", "b", 0), True),
        ("body.a", ("body", "a"), True),
        ("body.a", ("body",), False),
        ("body", ("body", "anything", 3), True),
        ("body.items[*].id", ("body", "items", 1, "id", "deep"), True),
        ("body.items[*].id", ("body", "items", 1), False),
        ("body..id", ("body", "x", "id", "y"), True),
        ("header.X-A", ("header", "x-a"), True),
        ("status", ("status",), True),
    ],
)
def test_covers(text: str, concrete: Concrete, expected: bool) -> None:
    assert parse_path(text).covers(concrete) is expected


def test_parse_segments() -> None:
    path = parse_path('body..items[*]["a.b"][2].*')
    assert [s.step for s in path.segments] == [
        Step.DESCEND,
        Step.KEY,
        Step.ANY_INDEX,
        Step.KEY,
        Step.INDEX,
        Step.ANY_KEY,
    ]
    assert path.segments[3].value == "a.b"
    assert path.segments[4].value == 2
    assert str(path) == 'body..items[*]["a.b"][2].*'


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("", 0),
        ("bodies", 0),
        ("Body.a", 0),
        ("status.x", 6),
        ("header", 6),
        ("header.", 7),
        ("header.X Y", 8),
        ("body.", 5),
        ("body..", 6),
        ("body...a", 6),
        ("body.a[", 7),
        ("body.a[x]", 7),
        ("body.a[-1]", 7),
        ("body.a[1", 8),
        ('body["a', 5),
        ('body["a"', 8),
        ("body.a b", 6),
        ("body.a.b.", 9),
        (" body", 0),
    ],
)
def test_bad_syntax_reports_position(text: str, position: int) -> None:
    with pytest.raises(PathSyntaxError) as info:
        parse_path(text)
    assert info.value.position == position
    assert isinstance(info.value, ValueError)
    assert f"position {position}" in str(info.value)
    assert repr(text) in str(info.value)


def test_error_message_explains() -> None:
    with pytest.raises(ValueError, match=r"header\.\* for all headers"):
        parse_path("header")
    with pytest.raises(ValueError, match="negative indices"):
        parse_path("body[-1]")
    with pytest.raises(ValueError, match=r"status, header\.<Name> or body"):
        parse_path("response.body")


@pytest.mark.parametrize(
    ("concrete", "text"),
    [
        (("status",), "status"),
        (("body",), "body"),
        (("body", "items", 2, "id"), "body.items[2].id"),
        (("body", 0), "body[0]"),
        (("body", "a.b"), 'body["a.b"]'),
        (("body", "*"), 'body["*"]'),
        (("body", ""), 'body[""]'),
        (("body", 'q"x'), 'body["q\\"x"]'),
        (("body", "a b", "c"), 'body["a b"].c'),
        (("header", "X-Request-Id"), "header.X-Request-Id"),
        (("header", "*"), 'header["*"]'),
        (("header", "bad name"), 'header["bad name"]'),
    ],
)
def test_format_path(concrete: Concrete, text: str) -> None:
    assert format_path(concrete) == text


@pytest.mark.parametrize(
    "concrete",
    [(), ("nope",), ("status", "x"), ("header",), ("header", ""), ("body", -1), ("body", 1.5)],
)
def test_format_path_rejects(concrete: tuple[object, ...]) -> None:
    with pytest.raises(ValueError):
        format_path(concrete)  # type: ignore[arg-type]


def test_noise_compiles_and_hides() -> None:
    noise = compile_noise(
        ["header.X-Trace", "body.items[*].created_at", "body.items[*].created_at"]
    )
    assert noise.texts() == ("header.X-Trace", "body.items[*].created_at")
    assert noise.hides(("header", "x-trace"))
    assert noise.hides(("body", "items", 4, "created_at", "nested"))
    assert not noise.hides(("body", "items", 4))
    assert not noise.hides(("status",))
    assert not compile_noise([])
    with pytest.raises(PathSyntaxError):
        compile_noise(["body.ok", "body..."])


# --- properties ------------------------------------------------------------------------

keys = st.text(max_size=8)
indices = st.integers(min_value=0, max_value=10**6)
body_paths = st.lists(keys | indices, max_size=6).map(lambda rest: ("body", *rest))
header_paths = st.text(alphabet=TCHARS, min_size=1, max_size=20).map(lambda n: ("header", n))
any_text_header = st.text(min_size=1, max_size=10).map(lambda n: ("header", n))
concrete_paths = st.just(("status",)) | header_paths | any_text_header | body_paths


@given(concrete_paths)
def test_format_parse_matches_itself(concrete: Concrete) -> None:
    path = parse_path(format_path(concrete))
    assert path.matches(concrete)
    assert path.covers(concrete)


@given(body_paths, keys | indices)
def test_formatted_path_matches_only_itself(concrete: Concrete, extra: str | int) -> None:
    path = parse_path(format_path(concrete))
    longer = (*concrete, extra)
    assert not path.matches(longer)
    assert path.covers(longer)
    if len(concrete) > 1:
        assert not path.matches(concrete[:-1])


@given(body_paths)
def test_format_is_canonical(concrete: Concrete) -> None:
    text = format_path(concrete)
    assert parse_path(text).text == text
    assert format_path(concrete) == text


@given(st.text(max_size=20))
def test_parse_never_raises_anything_but_syntax_error(text: str) -> None:
    try:
        parse_path(text)
    except PathSyntaxError as exc:
        assert 0 <= exc.position <= len(text)
