"""S49emberd-cert: a certificate of its own for each device, made at its first boot.

The script runs here as on a device, with its paths moved under a temp
directory: python-mbedtls (this interpreter's) or the openssl program make
the key and certificate, the listener file it writes is loaded by emberd.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import TREE

SCRIPT = TREE / "package/emberd/S49emberd-cert"


def _script(tmp_path: Path, backend: str) -> Path:
    """The script with /var/lib/emberd and /etc/default under tmp_path, as emberd.mk installs it."""
    text = SCRIPT.read_text()
    text = text.replace("/var/lib/emberd", str(tmp_path / "lib"))
    text = text.replace('"/etc/default/$DAEMON"', f'"{tmp_path}/default"')
    text = text.replace('\nEMBERD_CERT_BACKEND=""\n', f'\nEMBERD_CERT_BACKEND="{backend}"\n')
    path = tmp_path / "S49emberd-cert"
    path.write_text(text)
    return path


def _run(script: Path, action: str) -> subprocess.CompletedProcess[str]:
    # python3 is this interpreter (it has python-mbedtls), as /usr/bin/python3 on the device
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return subprocess.run(["sh", str(script), action], capture_output=True, text=True, env=env,
                          timeout=120, check=False)


def test_emberd_mk_sets_the_backend() -> None:
    """emberd.mk's sed finds the line it rewrites."""
    assert re.search(r'^EMBERD_CERT_BACKEND=""$', SCRIPT.read_text(), re.M)
    mk = (TREE / "package/emberd/emberd.mk").read_text()
    assert "s/^EMBERD_CERT_BACKEND=\"\"$$/EMBERD_CERT_BACKEND=\"$(EMBERD_CERT_BACKEND)\"/" in mk


def test_without_tls_it_does_nothing(tmp_path: Path) -> None:
    """The QEMU test image of firmware/ copies every init script: there it is a no-op."""
    script = _script(tmp_path, "")
    for action in ("start", "renew", "stop"):
        out = _run(script, action)
        assert out.returncode == 0, out.stdout + out.stderr
    assert "no TLS in this image" in _run(script, "start").stdout
    assert not (tmp_path / "lib").exists()


@pytest.mark.parametrize("backend", ["mbedtls", "openssl"])
def test_first_boot_makes_a_certificate_emberd_loads(tmp_path: Path, backend: str) -> None:
    if backend == "openssl" and shutil.which("openssl") is None:
        pytest.skip("no openssl program")
    script = _script(tmp_path, backend)
    out = _run(script, "start")
    assert out.returncode == 0 and out.stdout.endswith("OK\n"), out.stdout + out.stderr
    key, cert = tmp_path / "lib/tls/server.key", tmp_path / "lib/tls/server.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "lib/tls").stat().st_mode) == 0o750
    assert cert.read_text().startswith("-----BEGIN CERTIFICATE-----")
    conf = (tmp_path / "lib/tls.conf").read_text()
    assert f'ssl.backend := "{backend}"' in conf and '$SERVER["socket"] == ":443"' in conf

    # the next boots keep them
    before = key.read_bytes()
    out = _run(script, "start")
    assert out.stdout == "Checking the TLS certificate of emberd: OK\n"
    assert key.read_bytes() == before
    # renew makes a new key; the listener file stays as it is
    (tmp_path / "lib/tls.conf").write_text(conf + "# edited\n")
    out = _run(script, "renew")
    assert out.returncode == 0 and "Restart emberd" in out.stdout
    assert key.read_bytes() != before
    assert (tmp_path / "lib/tls.conf").read_text().endswith("# edited\n")

    main = tmp_path / "emberd.conf"
    main.write_text(f'server.modules = ( "mod_staticfile" )\nserver.document-root = "{tmp_path}"\n'
                    f'include "{tmp_path}/lib/*.conf"\n')
    check = subprocess.run([sys.executable, "-c", "import sys; from emberd.cli import main; "
                            "sys.exit(main())", "-tt", "-f", str(main)],
                           capture_output=True, text=True, timeout=60, check=False)
    assert check.returncode == 0, check.stderr
