"""Changing emberd's settings through emberd-control: checked, written atomically, reversible."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from emberd.config.errors import ConfigError
from emberd.config.loader import load
from emberd.control import settings as control_settings
from emberd.control.tunables import Refused, Tunables, render


@pytest.fixture
def setup(tmp_path: Path) -> Tunables:
    main = tmp_path / "emberd.conf"
    main.write_text('server.document-root = "/srv"\nserver.max-connections = 32\n'
                    f'include "{tmp_path}/*.tun"\n')
    conf = tmp_path / "control.conf"
    conf.write_text(f'control.emberd-config = "{main}"\n'
                    f'control.tunables-file = "{tmp_path}/tunables.tun"\n'
                    f'control.emberd-pid-file = "{tmp_path}/none.pid"\n')
    return Tunables(control_settings.load(str(conf)))


def test_change_is_written_and_loaded_by_emberd(setup: Tunables):
    assert setup.change({"server.max-connections": 16, "emberd.malloc-trim": False}) == []
    config = load(setup.main)
    assert config["server.max-connections"] == 16 and config["emberd.malloc-trim"] is False
    text = Path(setup.path).read_text()
    assert "server.max-connections := 16" in text and 'emberd.malloc-trim := "disable"' in text
    assert setup.current()["server.max-connections"]["value"] == 16
    setup.change({"server.max-connections": 20})
    assert "server.max-connections := 16" in Path(setup.path + ".prev").read_text()
    setup.change({"server.max-connections": None})  # back to what the main file says
    assert load(setup.main)["server.max-connections"] == 32
    assert not [p for p in os.listdir(os.path.dirname(setup.path)) if ".tmp" in p]


@pytest.mark.parametrize("change, message", [
    ({"server.port": 81}, "server.port is not a tunable"),
    ({"server.max-connections": 0}, "out of range"),
    ({"server.max-connections": "many"}, "expected an integer"),
    ({"server.stream-request-body": 7}, "out of range 0..2"),
    ({"server.max-connections": [1]}, "expected a number, string or boolean"),
])
def test_invalid_changes_change_nothing(setup: Tunables, change, message):
    with pytest.raises(Refused) as exc:
        setup.change(change)
    assert exc.value.status == 400 and message in str(exc.value)
    assert not os.path.exists(setup.path)


def test_whole_configuration_must_load(setup: Tunables):
    # chunk size above the slab size: every value fits alone, the pair does not
    Path(setup.main).write_text(Path(setup.main).read_text() + "emberd.chunk-slab-size = 65536\n")
    t = Tunables({"control.tunables": ("emberd.chunk-slab-size",),
                  "control.tunables-file": setup.path, "control.emberd-config": setup.main,
                  "control.emberd-pid-file": setup.pid_file})
    with pytest.raises(Refused) as exc:
        t.change({"emberd.chunk-slab-size": 4096})
    assert "must be at least server.chunkqueue-chunk-sz" in str(exc.value)


def test_render_quotes_strings():
    text = render({"a.b": 'say "hi" \\ there', "c.d": 5})
    assert 'a.b := "say \\"hi\\" \\\\ there"' in text and "c.d := 5" in text


def test_control_config_errors_name_the_line(tmp_path: Path):
    conf = tmp_path / "c.conf"
    conf.write_text('control.socket = "/run/x"\ncontrol.sockt = "/y"\n'
                    'control.socket-mode = "rw"\ncontrol.upload-max-size = 0\n')
    with pytest.raises(ConfigError) as exc:
        control_settings.load(str(conf))
    text = "\n".join(str(e) for e in exc.value.errors)  # type: ignore[attr-defined]
    assert "c.conf:2" in text and "unknown key control.sockt" in text
    assert "c.conf:3" in text and "octal" in text
    assert "c.conf:4" in text and "out of range" in text
