"""The grammar: every construct, valid and invalid, and the ways a file can be laid out."""

from __future__ import annotations

import os

import pytest

from emberd.config.conditions import Field, Op
from emberd.config.errors import ConfigError
from emberd.config.parser import expand_braces, parse
from emberd.config.tree import ConfigTree
from emberd.config.values import Array


def p(text: str, **kw) -> ConfigTree:
    return parse("t.conf", text, **kw)


def g(text: str, key: str, **kw):
    """The raw value of ``key`` in the global block."""
    return p(text, **kw).root.values[key].value


def error(text: str, **kw) -> ConfigError:
    with pytest.raises(ConfigError) as exc:
        p(text, **kw)
    return exc.value


def dump(tree: ConfigTree) -> list[tuple[str, dict]]:
    """A comparable picture of a tree: block paths and their values."""
    return [(b.path, {k: a.value for k, a in b.values.items() if k not in ("var.PID", "var.CWD")})
            for b in tree.blocks]


# -- values and expressions --------------------------------------------------

def test_scalars():
    assert g('a.b = "x"', "a.b") == "x"
    assert g("a.b = 42", "a.b") == 42


def test_key_without_dot_is_a_variable():
    tree = p('base = "/srv"\nserver.document-root = base + "/www"')
    assert tree.root.values["var.base"].value == "/srv"
    assert tree.root.values["server.document-root"].value == "/srv/www"


def test_builtin_variables():
    tree = p("a.pid = var.PID\na.cwd = var.CWD", cwd="/some/dir")
    assert tree.root.values["a.pid"].value == os.getpid()
    assert tree.root.values["a.cwd"].value == "/some/dir"


def test_env_variables_are_read_only():
    assert g("a.b = env.HOME", "a.b", environ={"HOME": "/root"}) == "/root"
    assert "undefined environment variable NOPE" in error("a.b = env.NOPE", environ={}).message
    assert "read-only" in error('env.HOME = "x"').message
    assert "read-only" in error('env.HOME += "x"').message


def test_undefined_variable():
    e = error("a.b = var.missing")
    assert "undefined variable var.missing" in e.message
    assert (e.location.line, e.location.column) == (1, 7)


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ('"a" + "b"', "ab"),
        ('"port" + 80', "port80"),
        ('80 + "x"', "80x"),
        ("1 + 2 + 3", 6),
        ('("a") + ("b")', Array([(None, "a"), (None, "b")])),
        ('("k" => 1) + ("k" => 1)', Array([("k", 1)])),  # an identical entry is ignored
    ],
)
def test_plus_merges(expr, value):
    assert g(f"x.y = {expr}", "x.y") == value


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ('("k" => 1) + ("k" => 2)', 'duplicate list key "k"'),
        ('("a") + "b"', "cannot merge a list with a string"),
        ('"b" + ("a")', "cannot merge a string with a list"),
        ("9223372036854775807 + 1", "integer overflow"),
    ],
)
def test_plus_errors(expr, message):
    e = error(f"x.y = {expr}")
    assert message in e.message
    assert e.location.line == 1


def test_integer_too_large():
    assert "too large" in error("x.y = 99999999999999999999").message


def test_lists():
    assert g("x.y = ()", "x.y") == Array()
    assert g('x.y = ( "a", )', "x.y") == Array([(None, "a")])
    assert g('x.y = ( "a",, "b" ,, )', "x.y") == Array([(None, "a"), (None, "b")])
    assert g('x.y = ( "k" => ( "a" => 1 ), "v" )', "x.y") == Array(
        [("k", Array([("a", 1)])), (None, "v")])
    assert g('x.y = ( 1 + 1 => "two", "a" + "b" => 1 )', "x.y") == Array(
        [("2", "two"), ("ab", 1)])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('x.y = ( "k" => 1, "k" => 2 )', 'duplicate list key "k"'),
        ("x.y = ( , )", "expected a value"),
        ('x.y = ( "a" "b" )', "two strings in a row"),
        ('x.y = ( "a"', "never closed"),
        ('x.y = ( ("a") => 1 )', "a list key must be a string"),
        ("x.y = ( 1 2 )", "expected ',' or ')'"),
    ],
)
def test_list_errors(text, message):
    assert message in error(text).message


# -- assignment operators ----------------------------------------------------

def test_assign_twice_in_one_block_is_an_error():
    e = error('a.b = 1\n\na.b = 2')
    assert "a.b is already set in this block (at t.conf:1:1)" in e.message
    assert (e.location.line, e.location.column) == (3, 1)


def test_force_assign_replaces():
    assert g("a.b = 1\na.b := 2", "a.b") == 2


def test_append_merges_in_the_same_block():
    assert g('a.b = ("x")\na.b += ("y")', "a.b") == Array([(None, "x"), (None, "y")])


def test_append_inherits_from_the_enclosing_block():
    tree = p('a.b = ("x")\n$HTTP["url"] =^ "/a" {\n  a.b += ("y")\n}')
    assert tree.root.values["a.b"].value == Array([(None, "x")])
    assert tree.blocks[1].values["a.b"].value == Array([(None, "x"), (None, "y")])


def test_append_without_any_previous_value_assigns():
    assert g("a.b += 5", "a.b") == 5


def test_append_type_mismatch():
    assert "cannot append to a.b" in error('a.b = ("x")\na.b += "y"').message


def test_several_statements_on_one_line():
    tree = p("a = 1 b = 2")
    assert tree.root.values["var.a"].value == 1
    assert tree.root.values["var.b"].value == 2


def test_missing_operator():
    assert "expected '=', ':=' or '+='" in error("a.b\n").message


# -- conditions --------------------------------------------------------------

def test_condition_block():
    tree = p('$HTTP["host"] == "www.Example.org" {\n  server.name = "x"\n}\n')
    b = tree.blocks[1]
    assert b.condition.field is Field.HOST
    assert b.condition.op is Op.EQ
    assert b.condition.value == "www.example.org"
    assert b.values["server.name"].value == "x"
    assert b.parent is tree.root


@pytest.mark.parametrize(
    ("name", "field", "header"),
    [
        ("url", Field.URL, None), ("host", Field.HOST, None),
        ("remoteip", Field.REMOTE_IP, None), ("remote-ip", Field.REMOTE_IP, None),
        ("scheme", Field.SCHEME, None), ("request-method", Field.REQUEST_METHOD, None),
        ("querystring", Field.QUERY_STRING, None), ("query-string", Field.QUERY_STRING, None),
        ("useragent", Field.REQUEST_HEADER, "user-agent"),
        ("user-agent", Field.REQUEST_HEADER, "user-agent"),
        ("referer", Field.REQUEST_HEADER, "referer"), ("cookie", Field.REQUEST_HEADER, "cookie"),
        ("language", Field.REQUEST_HEADER, "accept-language"),
    ],
)
def test_http_condition_names(name, field, header):
    c = p(f'$HTTP["{name}"] =~ "x" {{ }}').blocks[1].condition
    assert (c.field, c.header) == (field, header)


def test_request_header_and_server_socket():
    tree = p('$REQUEST_HEADER["X-" + "Api"] == "1" { }\n$SERVER["socket"] == ":8443" { }')
    assert (tree.blocks[1].condition.field, tree.blocks[1].condition.header) == (
        Field.REQUEST_HEADER, "x-api")
    assert tree.blocks[2].condition.field is Field.SERVER_SOCKET
    assert tree.blocks[2].condition.value == ":8443"


def test_condition_value_may_be_an_expression():
    tree = p('prefix = "/api"\n$HTTP["url"] =^ prefix + "/" { }')
    assert tree.blocks[1].condition.value == "/api/"


def test_remote_ip_cidr_is_normalised():
    tree = p('$HTTP["remote-ip"] == "10.1.2.3/8" { }\n$HTTP["remoteip"] != "::0001" { }')
    assert str(tree.blocks[1].condition.network) == "10.1.2.3/8"
    assert tree.blocks[2].condition.value == "::1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('$HTTP["nope"] == "x" { }', 'unknown condition $HTTP["nope"]'),
        ('$SERVER["port"] == "x" { }', 'only $SERVER["socket"] exists'),
        ('$FOO["x"] == "x" { }', "unknown condition $FOO"),
        ('$HTTP["url"] == 5 { }', "must be a string, not a integer"),
        ('$HTTP["url"] =~ "(" { }', "invalid regular expression"),
        ('$HTTP["url"] =~ "(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)" { }', "at most 9 can be used"),
        ('$HTTP["remote-ip"] == "10.0.0.0/33" { }', "invalid IP address or network"),
        ('$HTTP["remote-ip"] == "nope" { }', "invalid IP address or network"),
        ('$HTTP["host"] == "a:b" { }', "invalid host name"),
        ('$SERVER["socket"] == "a:99999" { }', "invalid socket address"),
        ('$HTTP["url"] == "/" server.name = "x"', "expected '{'"),
        ('$HTTP["url"] == "/" {\n server.name = "x"\n', "never closed"),
        ("}", "'}' without a matching '{'"),
        ('else { }', "'else' without a condition"),
        ('$HTTP["url"] == "/" { } else "x"', "expected a condition or '{' after 'else'"),
        ('$HTTP "url"', "expected '['"),
    ],
)
def test_condition_errors(text, message):
    assert message in error(text).message


@pytest.mark.parametrize("word", ["else", "elif", "elsif", "elseif", "else if"])
def test_else_chain_spellings(word):
    tree = p(f'$HTTP["host"] == "a" {{ x.y = 1 }}\n{word} $HTTP["host"] == "b" {{ x.y = 2 }}\n'
             "else { x.y = 3 }\n")
    a, b, c = tree.blocks[1:]
    assert b.prev is a and c.prev is b
    assert c.condition is None and c.is_else
    assert c.values["x.y"].value == 3


def test_else_may_follow_comments_and_blank_lines():
    tree = p('$HTTP["host"] == "a" {\n}\n\n  # comment\n\nelse {\n  x.y = 1\n}\n')
    assert tree.blocks[2].prev is tree.blocks[1]


def test_if_prefix():
    tree = p('if $HTTP["host"] == "a" { }\nelse if $HTTP["host"] == "b" { }')
    assert tree.blocks[2].prev is tree.blocks[1]


def test_nested_conditions():
    tree = p('$HTTP["host"] == "a" {\n  $HTTP["url"] =^ "/x" {\n    x.y = 1\n  }\n}')
    assert tree.blocks[2].parent is tree.blocks[1]
    assert tree.blocks[1].children == [tree.blocks[2]]


def test_same_condition_twice_is_the_same_block():
    tree = p('$HTTP["host"] == "a" { x.y = 1 }\n$HTTP["host"] == "a" { x.z = 2 }')
    assert len(tree.blocks) == 2
    assert set(tree.blocks[1].values) == {"x.y", "x.z"}
    assert "already set" in error('$HTTP["host"] == "a" { x.y = 1 }\n'
                                  '$HTTP["host"] == "a" { x.y = 2 }').message


def test_unreachable_else():
    e = error('$HTTP["host"] == "b" { }\n$HTTP["host"] == "a" { }\n'
              'else $HTTP["host"] == "b" { }')
    assert "unreachable else branch" in e.message
    e = error('$HTTP["host"] == "a" { } else { } else { }')
    assert "follows a plain 'else'" in e.message


def test_global_block():
    tree = p('$HTTP["host"] == "a" {\n  global {\n    x.y = 1\n  }\n}')
    assert tree.root.values["x.y"].value == 1
    e = error('global {\n $HTTP["host"] == "a" { }\n}')
    assert "conditions cannot be used inside a global" in e.message


# -- includes ----------------------------------------------------------------

def test_include_is_relative_to_the_main_file(write, tmp_path):
    write("conf.d/a.conf", "a.a = 1\n")
    main = write("main.conf", 'include "conf.d/a.conf"\nb.b = a.a + 1\n')
    tree = parse(main)
    assert tree.root.values["b.b"].value == 2
    assert tree.sources == [main, str(tmp_path / "conf.d/a.conf")]


def test_include_glob_sorted_and_braces(write):
    write("conf.d/20-b.conf", 'x.y += ("b")\n')
    write("conf.d/10-a.conf", 'x.y += ("a")\n')
    write("conf.d/30-c.txt", 'x.y += ("c")\n')
    main = write("main.conf", 'include "conf.d/*.conf"\ninclude "conf.d/{30-c,99}.txt"\n')
    assert parse(main).root.values["x.y"].value == Array([(None, v) for v in "abc"])


def test_include_glob_matching_nothing_is_fine(write):
    main = write("main.conf", 'include "conf.d/*.conf"\na.b = 1\n')
    assert parse(main).root.values["a.b"].value == 1


def test_include_missing_file_is_an_error(write):
    main = write("main.conf", '\n  include "missing.conf"\n')
    with pytest.raises(ConfigError) as exc:
        parse(main)
    assert "include file not found" in exc.value.message
    assert (exc.value.location.line, exc.value.location.column) == (2, 3)


def test_error_in_an_included_file_names_that_file(write):
    inc = write("inc.conf", "a.b = 1\na.b = 2\n")
    main = write("main.conf", 'include "inc.conf"\n')
    with pytest.raises(ConfigError) as exc:
        parse(main)
    assert exc.value.location.source == inc
    assert exc.value.location.line == 2


def test_include_inside_a_condition(write):
    write("inc.conf", "x.y = 1\n")
    main = write("main.conf", '$HTTP["host"] == "a" {\n  include "inc.conf"\n}\n')
    assert parse(main).blocks[1].values["x.y"].value == 1


def test_include_loop_is_stopped(write):
    main = write("main.conf", 'include "main.conf"\n')
    with pytest.raises(ConfigError) as exc:
        parse(main)
    assert "nested more than" in exc.value.message


def test_include_of_a_directory(write, tmp_path):
    (tmp_path / "d.conf").mkdir()
    main = write("main.conf", 'include "d.conf"\n')
    with pytest.raises(ConfigError, match="is a directory"):
        parse(main)


def test_include_shell(write, tmp_path):
    write("gen.sh", "echo 'a.b = \"'$(basename $(pwd))'\"'\n")
    main = write("main.conf", 'include_shell "sh gen.sh"\n')
    tree = parse(main)
    assert tree.root.values["a.b"].value == tmp_path.name  # runs in the main file's directory
    assert tree.sources[-1] == "sh gen.sh"


def test_include_shell_failure(write):
    main = write("main.conf", 'include_shell "exit 3"\n')
    with pytest.raises(ConfigError, match="exited with status 3"):
        parse(main)


def test_expand_braces():
    assert expand_braces("a{b,c}d") == ["abd", "acd"]
    assert expand_braces("{a,b{c,d}}") == ["a", "bc", "bd"]
    assert expand_braces("x{y}z") == ["x{y}z"]
    assert expand_braces("plain") == ["plain"]


# -- layout: the same configuration written in different ways ---------------

SAMPLE = """\
var.root = "/srv"
server.document-root = var.root + "/www"
server.modules = (
    "mod_access",
    "mod_alias",
)
mimetype.assign = ( ".html" => "text/html", ".txt" => "text/plain" )
$HTTP["host"] == "example.org" {
    server.name = "example.org"
    $HTTP["url"] =^ "/api/" {
        server.max-request-size = 64
    }
}
else $HTTP["host"] =~ "^(.+)\\.example\\.org$" {
    server.name = "sub"
}
else {
    server.name = "other"
}
"""


def _with_comments(text: str) -> str:
    out = []
    for line in text.splitlines():
        # a comment after every line, and comment-only lines between them
        out.append(f"{line}  # trailing comment\n# a line of its own\n" if line.strip()
                   else "\n")
    return "".join(out)


@pytest.mark.parametrize(
    "variant",
    [
        lambda t: t,
        lambda t: t.replace("\n", "\r\n"),
        lambda t: t.replace("\n", "\r"),
        _with_comments,
        lambda t: t.replace("    ", "\t"),
        lambda t: "\n\n" + t + "\n\n",
    ],
    ids=["lf", "crlf", "cr", "comments", "tabs", "blank-lines"],
)
def test_layout_variants_give_the_same_tree(variant):
    assert dump(p(variant(SAMPLE))) == dump(p(SAMPLE))


def test_split_across_includes_gives_the_same_tree(write):
    lines = SAMPLE.splitlines(keepends=True)
    # top-level statements end at these line numbers (1-based)
    cuts = [1, 2, 6, 7, len(lines)]
    start = 0
    includes = []
    for n, end in enumerate(cuts):
        write(f"part{n}.conf", "".join(lines[start:end]))
        includes.append(f'include "part{n}.conf"\n')
        start = end
    main = write("main.conf", "".join(includes))
    assert dump(parse(main)) == dump(p(SAMPLE))


def test_no_final_newline():
    assert g('a.b = "x"', "a.b") == "x"
    assert len(p('$HTTP["url"] == "/" { }').blocks) == 2
