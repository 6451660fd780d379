"""The App API's route tree (localhost.app.routes): pure, no sockets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from localhost.app.routes import NotAllowed, RouteMatch, RouteTree


def tree_of(*routes: tuple[str, str]) -> RouteTree[str]:
    """A tree whose targets are ``"METHOD PATTERN"``, to see which route won."""
    tree: RouteTree[str] = RouteTree()
    for method, pattern in routes:
        tree.add(method, pattern, f"{method} {pattern}")
    return tree


# -- literals ---------------------------------------------------------------


def test_literal_routes_match_their_exact_path() -> None:
    tree = tree_of(("GET", "/"), ("GET", "/a"), ("GET", "/a/b"), ("POST", "/upper"))
    assert tree.match("GET", "/") == RouteMatch("GET /", ())
    assert tree.match("GET", "/a") == RouteMatch("GET /a", ())
    assert tree.match("GET", "/a/b") == RouteMatch("GET /a/b", ())
    assert tree.match("POST", "/upper") == RouteMatch("POST /upper", ())
    assert tree.match("GET", "/b") is None
    assert tree.match("GET", "/a/b/c") is None
    assert tree.match("GET", "/ab") is None


def test_literal_matching_is_case_sensitive() -> None:
    tree = tree_of(("GET", "/About"))
    assert tree.match("GET", "/about") is None
    assert tree.match("GET", "/About") == RouteMatch("GET /About", ())


def test_path_without_leading_slash_is_no_match() -> None:
    tree = tree_of(("OPTIONS", "/"), ("*", "/**"))
    assert tree.match("OPTIONS", "*") is None
    assert tree.match("GET", "") is None


def test_targets_are_generic() -> None:
    def handler() -> int:
        return 7

    tree: RouteTree[object] = RouteTree()
    tree.add("GET", "/f", handler)
    tree.add("GET", "/none", None)
    found = tree.match("GET", "/f")
    assert isinstance(found, RouteMatch) and found.target is handler
    # A None target is still a match, distinct from "no route".
    assert tree.match("GET", "/none") == RouteMatch(None, ())


# -- :param and * -----------------------------------------------------------


def test_param_captures_one_segment() -> None:
    tree = tree_of(("GET", "/user/:id"), ("GET", "/user/:id/post/:post"))
    assert tree.match("GET", "/user/42") == RouteMatch("GET /user/:id", ("42",))
    assert tree.match("GET", "/user/42/post/7") == RouteMatch(
        "GET /user/:id/post/:post", ("42", "7")
    )
    assert tree.match("GET", "/user/42/post") is None
    assert tree.match("GET", "/user") is None


def test_param_never_matches_an_empty_segment() -> None:
    tree = tree_of(("GET", "/user/:id"), ("GET", "/api/*"))
    assert tree.match("GET", "/user/") is None
    assert tree.match("GET", "/api/") is None


def test_star_captures_one_segment_positionally() -> None:
    tree = tree_of(("GET", "/api/v1/*"), ("GET", "/*/x/*"))
    assert tree.match("GET", "/api/v1/items") == RouteMatch("GET /api/v1/*", ("items",))
    assert tree.match("GET", "/api/v1/items/3") is None
    assert tree.match("GET", "/a/x/b") == RouteMatch("GET /*/x/*", ("a", "b"))


def test_params_are_in_pattern_order_across_kinds() -> None:
    tree = tree_of(("GET", "/:a/*/:c/*/**"))
    assert tree.match("GET", "/1/2/3/4/5/6") == RouteMatch(
        "GET /:a/*/:c/*/**", ("1", "2", "3", "4", "5/6")
    )
    assert tree.match("GET", "/1/2/3/4") == RouteMatch(
        "GET /:a/*/:c/*/**", ("1", "2", "3", "4", "")
    )


def test_params_are_taken_as_given_decoded() -> None:
    tree = tree_of(("GET", "/user/:name"), ("GET", "/files/**"), ("GET", "/Jürgen/:x"))
    assert tree.match("GET", "/user/Jürgen") == RouteMatch("GET /user/:name", ("Jürgen",))
    assert tree.match("GET", "/user/a b") == RouteMatch("GET /user/:name", ("a b",))
    # No second decoding: a literal "%41" stays "%41".
    assert tree.match("GET", "/user/%41") == RouteMatch("GET /user/:name", ("%41",))
    assert tree.match("GET", "/files/ä/ö ü") == RouteMatch("GET /files/**", ("ä/ö ü",))
    assert tree.match("GET", "/Jürgen/1") == RouteMatch("GET /Jürgen/:x", ("1",))
    # Undecodable bytes arrive as surrogate escapes and are kept as they are.
    assert tree.match("GET", "/user/\udcff") == RouteMatch("GET /user/:name", ("\udcff",))


def test_a_path_spelled_like_the_pattern_is_just_a_path() -> None:
    tree = tree_of(("GET", "/user/:id"), ("GET", "/a/*"), ("GET", "/s/**"))
    assert tree.match("GET", "/user/:id") == RouteMatch("GET /user/:id", (":id",))
    assert tree.match("GET", "/a/*") == RouteMatch("GET /a/*", ("*",))
    assert tree.match("GET", "/s/**") == RouteMatch("GET /s/**", ("**",))


def test_param_names_do_not_matter_across_methods() -> None:
    tree = tree_of(("GET", "/u/:a"), ("POST", "/u/:b"))
    assert tree.match("GET", "/u/1") == RouteMatch("GET /u/:a", ("1",))
    assert tree.match("POST", "/u/1") == RouteMatch("POST /u/:b", ("1",))


# -- ** ---------------------------------------------------------------------


def test_double_star_matches_zero_one_or_many_segments() -> None:
    tree = tree_of(("GET", "/static/**"))
    route = "GET /static/**"
    assert tree.match("GET", "/static") == RouteMatch(route, ("",))
    assert tree.match("GET", "/static/") == RouteMatch(route, ("",))
    assert tree.match("GET", "/static/a") == RouteMatch(route, ("a",))
    assert tree.match("GET", "/static/a/b") == RouteMatch(route, ("a/b",))
    assert tree.match("GET", "/static/a/b/") == RouteMatch(route, ("a/b/",))
    assert tree.match("GET", "/staticx") is None
    assert tree.match("GET", "/") is None


def test_root_double_star_matches_everything() -> None:
    tree = tree_of(("GET", "/**"))
    assert tree.match("GET", "/") == RouteMatch("GET /**", ("",))
    assert tree.match("GET", "/a/b/c") == RouteMatch("GET /**", ("a/b/c",))


def test_double_star_after_a_param() -> None:
    tree = tree_of(("GET", "/repo/:name/**"))
    assert tree.match("GET", "/repo/x") == RouteMatch("GET /repo/:name/**", ("x", ""))
    assert tree.match("GET", "/repo/x/src/main.py") == RouteMatch(
        "GET /repo/:name/**", ("x", "src/main.py")
    )


# -- trailing slash ---------------------------------------------------------


def test_trailing_slash_is_a_distinct_path() -> None:
    tree = tree_of(("GET", "/a"), ("GET", "/b/"))
    assert tree.match("GET", "/a/") is None
    assert tree.match("GET", "/b") is None
    assert tree.match("GET", "/b/") == RouteMatch("GET /b/", ())
    both = tree_of(("GET", "/c"), ("GET", "/c/"))
    assert both.match("GET", "/c") == RouteMatch("GET /c", ())
    assert both.match("GET", "/c/") == RouteMatch("GET /c/", ())


def test_root_matches_only_root() -> None:
    tree = tree_of(("GET", "/"))
    assert tree.match("GET", "/") == RouteMatch("GET /", ())
    assert tree.match("GET", "/a") is None


def test_trailing_slash_after_a_param() -> None:
    tree = tree_of(("GET", "/u/:id/"))
    assert tree.match("GET", "/u/1/") == RouteMatch("GET /u/:id/", ("1",))
    assert tree.match("GET", "/u/1") is None


# -- precedence -------------------------------------------------------------


def test_precedence_literal_param_star_double_star() -> None:
    tree = tree_of(("GET", "/a/b"), ("GET", "/a/:x"), ("GET", "/a/*"), ("GET", "/a/**"))
    assert tree.match("GET", "/a/b") == RouteMatch("GET /a/b", ())
    assert tree.match("GET", "/a/c") == RouteMatch("GET /a/:x", ("c",))
    assert tree.match("GET", "/a/c/d") == RouteMatch("GET /a/**", ("c/d",))
    assert tree.match("GET", "/a/") == RouteMatch("GET /a/**", ("",))
    star = tree_of(("GET", "/a/*"), ("GET", "/a/**"))
    assert star.match("GET", "/a/c") == RouteMatch("GET /a/*", ("c",))


def test_precedence_does_not_depend_on_insertion_order() -> None:
    forward = [("GET", "/a/b"), ("GET", "/a/:x"), ("GET", "/a/*"), ("GET", "/a/**")]
    backward = tree_of(*reversed(forward))
    assert backward.match("GET", "/a/b") == RouteMatch("GET /a/b", ())
    assert backward.match("GET", "/a/c") == RouteMatch("GET /a/:x", ("c",))
    assert backward.match("GET", "/a/c/d") == RouteMatch("GET /a/**", ("c/d",))


def test_backtracking_from_a_literal_that_dead_ends() -> None:
    tree = tree_of(("GET", "/a/b/d"), ("GET", "/a/:x/c"))
    assert tree.match("GET", "/a/b/c") == RouteMatch("GET /a/:x/c", ("b",))
    assert tree.match("GET", "/a/b/d") == RouteMatch("GET /a/b/d", ())


def test_backtracking_through_every_level() -> None:
    routes = [("GET", "/a/b/c/d"), ("GET", "/a/:x/c/e"), ("GET", "/a/*/f")]
    tree = tree_of(*routes)
    assert tree.match("GET", "/a/b/c/e") == RouteMatch("GET /a/:x/c/e", ("b",))
    assert tree.match("GET", "/a/b/f") == RouteMatch("GET /a/*/f", ("b",))
    assert tree.match("GET", "/a/b/c/z") is None
    # Depth first: the literal b's own ** comes before going back up to :x.
    deeper = tree_of(*routes, ("GET", "/a/b/**"))
    assert deeper.match("GET", "/a/b/c/e") == RouteMatch("GET /a/b/**", ("c/e",))
    assert deeper.match("GET", "/a/b/c/d") == RouteMatch("GET /a/b/c/d", ())
    assert deeper.match("GET", "/a/q/c/e") == RouteMatch("GET /a/:x/c/e", ("q",))


def test_a_miss_on_a_long_path_is_bounded_by_the_tree() -> None:
    tree = tree_of(("GET", "/:a/:b"), ("GET", "/*/*/*"))
    # Far more segments than Python's recursion limit: the search stops at
    # the tree's depth instead of recursing per segment.
    path = "/x" * 5000
    assert tree.match("GET", path) is None
    assert tree_of(("GET", "/:a/**")).match("GET", path) == RouteMatch(
        "GET /:a/**", ("x", "/".join(["x"] * 4999))
    )


# -- methods, HEAD, "*" and 405 ---------------------------------------------


def test_method_mismatch_is_not_allowed_with_allow_set() -> None:
    tree = tree_of(("GET", "/user/:id"), ("PUT", "/user/:id"))
    assert tree.match("DELETE", "/user/42") == NotAllowed(allow=frozenset({"GET", "HEAD", "PUT"}))


def test_allow_set_without_get_has_no_head() -> None:
    tree = tree_of(("POST", "/upper"))
    assert tree.match("GET", "/upper") == NotAllowed(allow=frozenset({"POST"}))
    assert tree.match("HEAD", "/upper") == NotAllowed(allow=frozenset({"POST"}))


def test_allow_set_gathers_every_route_matching_the_path() -> None:
    tree = tree_of(
        ("GET", "/a/b"), ("POST", "/a/:x"), ("PUT", "/a/*"), ("PATCH", "/a/**"), ("DELETE", "/c/**")
    )
    assert tree.match("OPTIONS", "/a/b") == NotAllowed(
        allow=frozenset({"GET", "HEAD", "POST", "PUT", "PATCH"})
    )
    assert tree.match("OPTIONS", "/a/") == NotAllowed(allow=frozenset({"PATCH"}))


def test_method_takes_part_in_backtracking() -> None:
    tree = tree_of(("GET", "/a/b"), ("POST", "/a/:x"))
    assert tree.match("POST", "/a/b") == RouteMatch("POST /a/:x", ("b",))
    assert tree.match("GET", "/a/b") == RouteMatch("GET /a/b", ())
    assert tree.match("GET", "/a/c") == NotAllowed(allow=frozenset({"POST"}))


def test_double_star_with_zero_segments_backs_up_a_node_without_the_method() -> None:
    tree = tree_of(("GET", "/static"), ("POST", "/static/**"))
    assert tree.match("GET", "/static") == RouteMatch("GET /static", ())
    assert tree.match("POST", "/static") == RouteMatch("POST /static/**", ("",))


def test_head_uses_get_routes() -> None:
    tree = tree_of(("GET", "/page"), ("GET", "/user/:id"))
    assert tree.match("HEAD", "/page") == RouteMatch("GET /page", ())
    assert tree.match("HEAD", "/user/1") == RouteMatch("GET /user/:id", ("1",))


def test_explicit_head_route_beats_get() -> None:
    tree = tree_of(("GET", "/page"), ("HEAD", "/page"))
    assert tree.match("HEAD", "/page") == RouteMatch("HEAD /page", ())
    assert tree.match("GET", "/page") == RouteMatch("GET /page", ())
    # Order of registration does not matter either.
    reverse = tree_of(("HEAD", "/page"), ("GET", "/page"))
    assert reverse.match("HEAD", "/page") == RouteMatch("HEAD /page", ())


def test_any_method_route() -> None:
    tree = tree_of(("*", "/any"), ("*", "/p/:x"))
    for method in ("GET", "HEAD", "POST", "DELETE", "PROPFIND", "get"):
        assert tree.match(method, "/any") == RouteMatch("* /any", ())
        assert tree.match(method, "/p/1") == RouteMatch("* /p/:x", ("1",))
    assert tree.match("GET", "/other") is None


def test_exact_method_beats_any_method_on_the_same_node() -> None:
    tree = tree_of(("*", "/any"), ("POST", "/any"), ("GET", "/g"), ("*", "/g"))
    assert tree.match("POST", "/any") == RouteMatch("POST /any", ())
    assert tree.match("GET", "/any") == RouteMatch("* /any", ())
    # HEAD is answered by GET before the any-method route.
    assert tree.match("HEAD", "/g") == RouteMatch("GET /g", ())
    assert tree.match("PUT", "/g") == RouteMatch("* /g", ())


def test_any_method_on_a_more_specific_path_wins() -> None:
    tree = tree_of(("*", "/a/b"), ("GET", "/a/:x"))
    assert tree.match("GET", "/a/b") == RouteMatch("* /a/b", ())


def test_methods_are_case_sensitive() -> None:
    tree = tree_of(("GET", "/a"))
    assert tree.match("get", "/a") == NotAllowed(allow=frozenset({"GET", "HEAD"}))


def test_any_token_is_a_method() -> None:
    tree = tree_of(("PROPFIND", "/dav"), ("M-SEARCH", "/dav"), ("x!#$%&'+.^_`|~9", "/dav"))
    assert tree.match("M-SEARCH", "/dav") == RouteMatch("M-SEARCH /dav", ())
    assert tree.match("x!#$%&'+.^_`|~9", "/dav") == RouteMatch("x!#$%&'+.^_`|~9 /dav", ())
    assert tree.match("GET", "/dav") == NotAllowed(
        allow=frozenset({"PROPFIND", "M-SEARCH", "x!#$%&'+.^_`|~9"})
    )


def test_options_is_not_special() -> None:
    tree = tree_of(("GET", "/a"))
    assert tree.match("OPTIONS", "/a") == NotAllowed(allow=frozenset({"GET", "HEAD"}))


# -- errors from add --------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("user", "must start with '/'"),
        ("", "must start with '/'"),
        ("/static/**/x", "'**' must be the last segment"),
        ("/**/**", "'**' must be the last segment"),
        ("/user/:", "':' without a param name"),
        ("/user/:1d", "param name '1d' is not an identifier"),
        ("/user/:a-b", "param name 'a-b' is not an identifier"),
        ("/user/:a b", "param name 'a b' is not an identifier"),
        ("/:id/x/:id", "param name 'id' is repeated"),
        ("/files/*.txt", "must be a whole segment"),
        ("/a/***", "must be a whole segment"),
        ("//a", "empty segment"),
        ("/a//b", "empty segment"),
    ],
)
def test_add_rejects_bad_patterns(pattern: str, message: str) -> None:
    tree: RouteTree[str] = RouteTree()
    with pytest.raises(ValueError, match="route pattern") as info:
        tree.add("GET", pattern, "t")
    assert message in str(info.value)
    assert repr(pattern) in str(info.value)


@pytest.mark.parametrize("method", ["", "GET POST", "GÉT", "GET\r\n", "(GET)", "GET/1", "a:b"])
def test_add_rejects_a_method_that_is_not_a_token(method: str) -> None:
    tree: RouteTree[str] = RouteTree()
    with pytest.raises(ValueError, match="is not an HTTP method token") as info:
        tree.add(method, "/a", "t")
    assert repr(method) in str(info.value)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("GET", "/a"), ("GET", "/a")),
        (("GET", "/u/:a"), ("GET", "/u/:b")),
        (("POST", "/u/:a/x/:b"), ("POST", "/u/:b/x/:a")),
        (("GET", "/s/**"), ("GET", "/s/**")),
        (("*", "/any"), ("*", "/any")),
        (("HEAD", "/h"), ("HEAD", "/h")),
    ],
)
def test_add_rejects_the_same_route_twice(first: tuple[str, str], second: tuple[str, str]) -> None:
    tree = tree_of(first)
    with pytest.raises(ValueError, match="already defined") as info:
        tree.add(*second, "again")
    assert f"{second[0]} {second[1]}" in str(info.value)
    assert f"{first[0]} {first[1]}" in str(info.value)
    # The first registration is kept.
    path = first[1].replace(":a", "1").replace(":b", "2").replace("**", "x")
    found = tree.match(first[0], path)
    assert isinstance(found, RouteMatch) and found.target == f"{first[0]} {first[1]}"


def test_same_pattern_under_other_methods_and_kinds_is_no_duplicate() -> None:
    tree = tree_of(("GET", "/u/:a"), ("HEAD", "/u/:a"), ("*", "/u/:a"), ("GET", "/u/*"))
    assert tree.match("GET", "/u/1") == RouteMatch("GET /u/:a", ("1",))


def test_a_rejected_pattern_leaves_no_route_behind() -> None:
    tree: RouteTree[str] = RouteTree()
    with pytest.raises(ValueError):
        tree.add("GET", "/a/:x/**/b", "t")
    assert tree.match("GET", "/a/1") is None
    assert tree.match("GET", "/a/1/z") is None


# -- property ---------------------------------------------------------------

# Literal segments: any non-empty text without "/", not starting with ":"
# and without "*" (those are pattern syntax), decoded text included.
_SEGMENT = st.text(
    alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="/*"),
    min_size=1,
    max_size=12,
).filter(lambda s: not s.startswith(":"))
_PATH = st.lists(_SEGMENT, min_size=0, max_size=8).map(lambda parts: "/" + "/".join(parts))


@given(paths=st.lists(_PATH, min_size=1, max_size=6, unique=True), other=_PATH)
def test_literal_routes_match_exactly_their_own_path(paths: list[str], other: str) -> None:
    tree: RouteTree[str] = RouteTree()
    for path in paths:
        tree.add("GET", path, path)
    for path in paths:
        assert tree.match("GET", path) == RouteMatch(path, ())
        assert tree.match("POST", path) == NotAllowed(allow=frozenset({"GET", "HEAD"}))
        # The same path with a trailing slash is another path.
        if path + "/" not in paths and path != "/":
            assert tree.match("GET", path + "/") is None
    if other not in paths:
        assert tree.match("GET", other) is None


@given(path=_PATH.filter(lambda path: path != "/"), extra=_SEGMENT)
def test_literal_segments_are_walked_one_by_one(path: str, extra: str) -> None:
    # POST is routed only below the literal path, so the search must walk
    # every literal segment down to it (not just look the whole path up).
    tree = tree_of(("GET", path), ("POST", path + "/**"))
    assert tree.match("POST", path) == RouteMatch(f"POST {path}/**", ("",))
    assert tree.match("POST", f"{path}/{extra}") == RouteMatch(f"POST {path}/**", (extra,))
    assert tree.match("GET", path) == RouteMatch(f"GET {path}", ())


@given(prefix=st.lists(_SEGMENT, max_size=4), values=st.lists(_SEGMENT, min_size=1, max_size=4))
def test_params_capture_the_segments_at_their_positions(
    prefix: list[str], values: list[str]
) -> None:
    pattern = "/" + "/".join(prefix + [f":p{i}" for i in range(len(values))])
    tree = tree_of(("GET", pattern))
    path = "/" + "/".join(prefix + values)
    assert tree.match("GET", path) == RouteMatch(f"GET {pattern}", tuple(values))
