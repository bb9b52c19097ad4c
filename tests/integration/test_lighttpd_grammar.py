"""emberd reads what Debian's lighttpd reads: its packaged configs, and random texts
that lighttpd's own parser (``lighttpd -t``) accepts or rejects."""

from __future__ import annotations

import glob
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emberd.config.errors import ConfigError
from emberd.config.parser import parse
from emberd.config.values import Array

LIGHTTPD = shutil.which("lighttpd") or "/usr/sbin/lighttpd"
DEBIAN_CONF = "/etc/lighttpd/lighttpd.conf"

pytestmark = pytest.mark.skipif(not Path(LIGHTTPD).exists(),
                                reason="Debian's lighttpd is not installed (.ci/run installs it)")


def test_debian_lighttpd_conf_parses():
    tree = parse(DEBIAN_CONF)
    root = tree.root.values
    assert root["server.document-root"].value == "/var/www/html"
    # include_shell "create-mime.conf.pl" produced the mime table
    assert root["mimetype.assign"].value.get(".html").startswith("text/html")
    assert any("create-mime" in s for s in tree.sources)


@pytest.mark.parametrize("name", sorted(Path(p).name for p in
                                        glob.glob("/etc/lighttpd/conf-available/*.conf")))
def test_debian_conf_available_parses_after_the_main_config(name, write):
    main = write("main.conf", f'include "{DEBIAN_CONF}"\n'
                 f'include "/etc/lighttpd/conf-available/{name}"\n')
    parse(main)


# -- differential: the same random text through both parsers ------------------

PIECES = st.sampled_from([
    "x.a", "x.b", "x.c", "var.v", "v", "env.HOME", "env.NOPE_X", "=", ":=", "+=", "+", "=>",
    ",", "(", ")", "{", "}", '"s"', '"a" ', '"k"', "1", "22", '"/"', "else", "global",
    '$HTTP["url"] =~ "^/a"', '$HTTP["url"] == "/x"', '$HTTP["host"] == "a.example"',
    '$HTTP["remote-ip"] == "10.0.0.0/8"', '$SERVER["socket"] == ":8080"', "$HTTP[", "]",
    "\n", "\n", "\n", " ", "# comment\n", '"x" + 1', "var.v = 1\n",
])


def lighttpd_scalars(path: str) -> dict[str, object] | None:
    """The x.* scalars of the global scope as ``lighttpd -p`` prints them; None if rejected."""
    r = subprocess.run([LIGHTTPD, "-p", "-f", path], capture_output=True, text=True,
                       timeout=30, check=False)
    if r.returncode != 0:
        return None
    out: dict[str, object] = {}
    for line in r.stdout.splitlines():
        m = re.match(r'^    (x\.\w+)\s+= (\d+|"[^"]*")$', line)
        if m:
            value = m.group(2)
            out[m.group(1)] = int(value) if value.isdigit() else value[1:-1]
    return out


def emberd_scalars(path: str) -> dict[str, object] | None:
    try:
        tree = parse(path, environ={"HOME": "/root"})
    except ConfigError:
        return None
    return {k: a.value for k, a in tree.root.values.items()
            if k.startswith("x.") and not isinstance(a.value, Array)}


KEYS = st.sampled_from(["x.a", "x.b", "x.c", "var.v", "v"])
VALUES = st.sampled_from(['"s"', '"a b"', "1", "22", "v", "var.v", "env.HOME", "var.nope",
                          '( "l" )', '( "k" => 1, )', "()", "x.a"])
# Debian's lighttpd is 1.4.69: no 'elif'/'elsif'/'elseif' and no 'if' prefix yet (1.4.74)
CONDS = st.sampled_from(['$HTTP["url"] =~ "^/a"', '$HTTP["url"] == "/x"', '$HTTP["url"] =^ "/"',
                         '$HTTP["host"] == "a.example"', '$HTTP["remote-ip"] == "10.0.0.0/8"',
                         '$SERVER["socket"] == ":8080"', '$REQUEST_HEADER["X-A"] != ""'])


@st.composite
def statements(draw, depth: int = 0) -> list[str]:
    out: list[str] = []
    for _ in range(draw(st.integers(0, 4 if depth == 0 else 2))):
        kind = draw(st.sampled_from(["assign", "assign", "assign", "cond", "global", "blank"]))
        if kind == "assign":
            values = draw(st.lists(VALUES, min_size=1, max_size=3))
            op = draw(st.sampled_from(["=", ":=", ":=", "+="]))
            out += [draw(KEYS), op, " + ".join(values), "\n"]
        elif kind == "cond" and depth < 2:
            for i in range(draw(st.integers(1, 3))):
                if i:
                    out.append(draw(st.sampled_from(["else", "\nelse"])))
                if i and draw(st.booleans()):
                    out += ["{", *draw(statements(depth + 1)), "}"]
                    break
                out += [draw(CONDS), "{", *draw(statements(depth + 1)), "}"]
            out.append("\n")
        elif kind == "global" and depth == 0:
            out += ["global", "{", *draw(statements(1)), "}", "\n"]
        else:
            out.append(draw(st.sampled_from(["\n", "# c\n", "\n\n"])))
    return out


@st.composite
def texts(draw) -> str:
    """Mostly well-formed statements, with now and then a token added or dropped."""
    tokens = draw(statements())
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(tokens)))
        if tokens and draw(st.booleans()):
            del tokens[min(at, len(tokens) - 1)]
        else:
            tokens.insert(at, draw(PIECES))
    return " ".join(tokens)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(texts())
def test_random_texts_read_like_lighttpd(tmp_path, text):
    """What lighttpd rejects emberd rejects; what both accept means the same.

    lighttpd's lemon parser silently drops tokens it cannot use (a stray '}',
    '=' or string), where emberd reports an error: so emberd may reject a text
    lighttpd accepts, never the other way round.
    """
    conf = tmp_path / "r.conf"
    conf.write_text(f'server.document-root = "/tmp"\nvar.v = "p"\n{text}\n')
    theirs = lighttpd_scalars(str(conf))
    ours = emberd_scalars(str(conf))
    if theirs is None:
        assert ours is None, text
    elif ours is not None:
        assert ours == theirs, text
