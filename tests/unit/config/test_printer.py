"""``emberd -p`` output parses back to the same settings (hypothesis round trips)."""

from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from emberd.config.directives import CORE
from emberd.config.errors import ConfigError
from emberd.config.loader import load
from emberd.config.printer import format_value, quote, render
from emberd.config.schema import Directive, Scope, Type
from emberd.config.settings import ServerConfig
from emberd.config.values import Array

# strings the grammar can express: no NUL, and no backslash at the very end
TEXT = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)),
               max_size=12).filter(lambda s: not s.endswith("\\"))
SIMPLE = [d for d in CORE if not d.subkeys and d.key not in (
    "server.modules", "server.document-root", "emberd.chunk-slab-size",
    "server.chunkqueue-chunk-sz", "server.max-connections", "server.max-fds")]


def literal(d: Directive) -> st.SearchStrategy[str]:
    """Configuration text for a valid value of ``d``."""
    if d.type is Type.BOOL:
        return st.sampled_from(['"enable"', '"disable"', '"true"', "0", "1", '"Disabled"'])
    if d.type in (Type.INT, Type.SHORT):
        hi = d.max if d.max is not None else (65535 if d.type is Type.SHORT else 2**40)
        return st.integers(d.min or 0, hi).map(str)
    if d.type is Type.STRING:
        if d.choices:
            return st.sampled_from(d.choices).map(quote)
        return TEXT.map(quote)
    if d.type is Type.LIST:
        return st.lists(TEXT, max_size=4).map(lambda xs: format_value(tuple(xs)))
    return st.dictionaries(TEXT, TEXT, max_size=4).map(format_value)


COND = st.one_of(
    st.tuples(st.just('$HTTP["url"]'), st.sampled_from(["==", "!=", "=^", "=$"]), TEXT.map(quote)),
    st.tuples(st.just('$HTTP["url"]'), st.sampled_from(["=~", "!~"]),
              st.sampled_from(['"^/a"', '"\\\\.php$"', '"(x)(y)"'])),
    st.tuples(st.just('$HTTP["host"]'), st.sampled_from(["==", "!="]),
              st.sampled_from(['"example.org"', '"Example.ORG:8080"', '"[::1]"'])),
    st.tuples(st.just('$HTTP["remote-ip"]'), st.sampled_from(["==", "!="]),
              st.sampled_from(['"10.0.0.0/8"', '"::1"', '"192.168.1.1"'])),
    st.tuples(st.just('$REQUEST_HEADER["X-A"]'), st.just("=~"), st.just('"."')),
).map(" ".join)

REQUEST_DIRECTIVES = [d for d in SIMPLE if d.scope is Scope.REQUEST]


@st.composite
def assignments(draw, directives: list[Directive], max_size: int) -> str:
    chosen = draw(st.lists(st.sampled_from(directives), max_size=max_size,
                           unique_by=lambda d: d.key))
    return "".join(f"{d.key} = {draw(literal(d))}\n" for d in chosen)


@st.composite
def blocks(draw, depth: int = 0) -> str:
    out = []
    for _ in range(draw(st.integers(0, 2 if depth else 3))):
        branches = draw(st.integers(1, 3))
        parts = []
        for i in range(branches):
            body = draw(assignments(REQUEST_DIRECTIVES, 3))
            if depth < 1 and draw(st.booleans()):
                body += draw(blocks(depth + 1))
            plain_else = i == branches - 1 and i > 0 and draw(st.booleans())
            head = "else " if i else ""
            head += "" if plain_else else draw(COND) + " "
            parts.append(f"{head}{{\n{body}}}")
        out.append("\n".join(parts) + "\n")
    return "".join(out)


def snapshot(config: ServerConfig) -> tuple:
    return (
        config.values,
        [(b.condition.text() if b.condition else None, b.parent, b.prev, b.values)
         for b in config.blocks],
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(assignments(SIMPLE, 12), blocks())
def test_print_parses_back_to_the_same_settings(globals_text, blocks_text):
    text = 'server.document-root = "/srv"\n' + globals_text + blocks_text
    try:
        first = load("t.conf", text)
    except ConfigError:
        assume(False)  # e.g. an else branch repeating an earlier condition: unreachable
        raise
    printed = render(first)
    second = load("printed.conf", printed)
    assert snapshot(second) == snapshot(first)
    # printing again gives the same text, but for the "# default" marks
    assert render(second).replace("  # default", "").splitlines()[1:] == \
        printed.replace("  # default", "").splitlines()[1:]


def test_print_marks_defaults_and_shows_blocks():
    config = load("t.conf", 'server.document-root = "/srv"\n'
                  '$HTTP["host"] == "a" { server.name = "x" }\nelse { server.name = "y" }\n')
    out = render(config)
    assert 'server.document-root = "/srv"\n' in out
    assert "server.port = 80  # default\n" in out
    assert '$HTTP["host"] == "a" {\n    server.name = "x"\n} else {\n    server.name = "y"\n}\n' in out


def test_second_else_branch_of_a_reopened_block_round_trips():
    text = ('server.document-root = "/srv"\n'
            '$HTTP["host"] == "a" { server.name = "1" } else $HTTP["url"] == "/" { '
            'server.name = "2" }\n'
            '$HTTP["host"] == "a" { server.tag = "t" } else $HTTP["url"] == "/x" { '
            'server.name = "3" }\n')
    first = load("t.conf", text)
    second = load("p.conf", render(first))
    assert snapshot(second) == snapshot(first)


def test_values_that_syntax_cannot_express_become_comments():
    config = load("t.conf", 'server.document-root = env.D\n', environ={"D": "C:\\"})
    assert "# server.document-root: its value ends with a backslash" in render(config)


def test_format_value():
    assert format_value(True) == '"enable"'
    assert format_value(("a", 'b"c')) == '( "a", "b\\"c" )'
    assert format_value(Array([("k", Array([(None, 1)]))])) == '( "k" => ( 1 ) )'
    assert format_value({}) == "( )"
    long = format_value({f"key{i}": "v" * 10 for i in range(5)})
    assert long.startswith("(\n    \"key0\" => ") and long.endswith(",\n)")


def test_device_config_with_module_tables_round_trips():
    """fastcgi.server and auth.require become run-time objects; -p prints them as written."""
    from pathlib import Path

    device = Path(__file__).resolve().parents[3] / "rootfs/etc/emberd/emberd.conf"
    first = load(str(device))
    again = load("printed.conf", render(first))
    for key in ("fastcgi.server", "auth.require", "server.modules", "status.memory-url"):
        assert again[key] == first[key], key
    assert again.blocks[1].values == first.blocks[1].values
