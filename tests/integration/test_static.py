"""Static files over HTTP/1.1: types, validators, ranges, index files, redirects."""

from __future__ import annotations

import subprocess

import pytest

from tests.helpers import get, parse_replies, raw

MODULES = 'server.modules = ( "mod_indexfile", "mod_access", "mod_staticfile" )\n' \
          'index-file.names = ( "index.html" )\n'


@pytest.fixture
def srv(emberd):
    return emberd(MODULES)


def test_get_and_head(srv, docroot):
    r = get(srv.port, "/index.html")
    assert (r.status, r.reason, r.version) == (200, "OK", "HTTP/1.1")
    assert r.body == (docroot / "index.html").read_bytes()
    assert r.header("Content-Type") == "text/html"
    assert r.header("Content-Length") == str(len(r.body))
    assert r.header("ETag").startswith('"') and r.header("Last-Modified").endswith("GMT")
    assert r.header("Accept-Ranges") == "bytes"
    assert r.header("Server").startswith("emberd/") and r.header("Date").endswith("GMT")
    h = get(srv.port, "/index.html", method="HEAD")
    assert h.status == 200 and h.body == b""
    assert h.header("Content-Length") == r.header("Content-Length")


def test_large_file_is_intact(srv, docroot):
    r = get(srv.port, "/data.bin")
    assert r.body == (docroot / "data.bin").read_bytes()
    assert r.header("Content-Type") == "application/octet-stream"


def test_large_file_through_chunks_is_intact(emberd, docroot):
    srv = emberd(MODULES + 'server.network-backend = "write"\nserver.chunkqueue-chunk-sz = 1024\n')
    assert get(srv.port, "/data.bin").body == (docroot / "data.bin").read_bytes()


def test_empty_file(srv):
    r = get(srv.port, "/empty.txt")
    assert (r.status, r.body, r.header("Content-Length")) == (200, b"", "0")


def test_non_ascii_name(srv):
    assert get(srv.port, "/%C3%BCmlaut%20file.txt").body == b"utf-8 name\n"


def test_index_file_and_directory_redirect(srv):
    assert get(srv.port, "/").body == b"<h1>emberd</h1>\n"
    assert get(srv.port, "/sub/").body == b"sub index\n"
    r = get(srv.port, "/sub?x=1")
    assert r.status == 301 and r.header("Location") == "/sub/?x=1"


def test_directory_without_index_is_forbidden(srv):
    assert get(srv.port, "/empty/").status == 403


def test_not_found_has_lighttpds_error_page(srv):
    r = get(srv.port, "/missing.html")
    assert r.status == 404 and b"<title>404 Not Found</title>" in r.body
    assert r.header("Content-Type") == "text/html"


def test_conditional_requests(srv):
    r = get(srv.port, "/index.html")
    etag, lmod = r.header("ETag"), r.header("Last-Modified")
    n = get(srv.port, "/index.html", {"If-None-Match": etag})
    assert n.status == 304 and n.body == b"" and n.header("Content-Length") is None
    assert n.header("ETag") == etag
    assert get(srv.port, "/index.html", {"If-None-Match": '"other"'}).status == 200
    assert get(srv.port, "/index.html", {"If-Modified-Since": lmod}).status == 304
    assert get(srv.port, "/index.html",
               {"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}).status == 200
    assert get(srv.port, "/index.html", {"If-Match": '"other"'}).status == 412
    assert get(srv.port, "/index.html", {"If-Match": etag}).status == 200


def test_single_range(srv, docroot):
    data = (docroot / "data.bin").read_bytes()
    r = get(srv.port, "/data.bin", {"Range": "bytes=100-199"})
    assert r.status == 206 and r.body == data[100:200]
    assert r.header("Content-Range") == f"bytes 100-199/{len(data)}"
    assert get(srv.port, "/data.bin", {"Range": "bytes=-10"}).body == data[-10:]
    assert get(srv.port, "/data.bin", {"Range": "bytes=1048570-"}).body == data[1048570:]


def test_multiple_ranges(srv, docroot):
    data = (docroot / "data.bin").read_bytes()
    r = get(srv.port, "/data.bin", {"Range": "bytes=0-9,1000-1009"})
    assert r.status == 206
    assert r.header("Content-Type") == "multipart/byteranges; boundary=fkj49sn38dcn3"
    parts = r.body.split(b"--fkj49sn38dcn3")
    assert parts[0] == b"" and parts[-1] == b"--\r\n"
    assert b"Content-Range: bytes 0-9/1048576\r\n\r\n" + data[0:10] + b"\r\n" == \
        parts[1].split(b"\r\n", 2)[2]
    assert parts[2].endswith(data[1000:1010] + b"\r\n")
    assert int(r.header("Content-Length")) == len(r.body)


def test_unsatisfiable_range(srv):
    r = get(srv.port, "/data.bin", {"Range": "bytes=2000000-"})
    assert r.status == 416 and r.header("Content-Range") == "bytes */1048576"


def test_if_range(srv):
    etag = get(srv.port, "/data.bin").header("ETag")
    assert get(srv.port, "/data.bin", {"Range": "bytes=0-0", "If-Range": etag}).status == 206
    assert get(srv.port, "/data.bin", {"Range": "bytes=0-0", "If-Range": '"x"'}).status == 200


def test_range_ignored_for_http10_and_when_disabled(emberd, srv):
    assert get(srv.port, "/data.bin", {"Range": "bytes=0-0"}, version="1.0").status == 200
    off = emberd(MODULES + 'server.range-requests = "disable"\n')
    r = get(off.port, "/data.bin", {"Range": "bytes=0-0"})
    assert r.status == 200 and r.header("Accept-Ranges") is None


def test_mimetype_assign_longest_suffix(emberd, docroot):
    (docroot / "a.tar.gz").write_bytes(b"x")
    srv = emberd(MODULES + 'mimetype.assign = ( ".gz" => "application/gzip", '
                 '".tar.gz" => "application/x-tgz", "" => "application/x-other" )\n')
    assert get(srv.port, "/a.tar.gz").header("Content-Type") == "application/x-tgz"
    assert get(srv.port, "/notes.inc").header("Content-Type") == "application/x-other"


def test_unknown_type_is_sent_without_caching_headers(emberd):
    srv = emberd(MODULES + 'mimetype.assign = ( ".html" => "text/html" )\n')
    r = get(srv.port, "/data.bin")
    assert r.header("Content-Type") == "application/octet-stream"
    assert r.header("ETag") is None and r.header("Last-Modified") is None


def test_access_deny(emberd):
    srv = emberd(MODULES + 'url.access-deny = ( ".inc", "~" )\n')
    assert get(srv.port, "/notes.inc").status == 403
    assert get(srv.port, "/index.html").status == 200


def test_access_allow(emberd):
    srv = emberd(MODULES + 'url.access-allow = ( ".html" )\n')
    assert get(srv.port, "/index.html").status == 200
    assert get(srv.port, "/sub/page.txt").status == 403


def test_static_file_exclude_extensions(emberd):
    srv = emberd(MODULES + 'static-file.exclude-extensions = ( ".inc" )\n')
    assert get(srv.port, "/notes.inc").status == 403


def test_etag_flags(emberd):
    srv = emberd(MODULES + 'static-file.etags = "disable"\n')
    assert get(srv.port, "/index.html").header("ETag") is None


def test_pathinfo(emberd):
    srv = emberd(MODULES)
    r = get(srv.port, "/sub/page.txt/extra/info")
    assert r.status == 200 and r.body == b"a page\n"
    off = emberd(MODULES + 'static-file.disable-pathinfo = "enable"\n')
    assert get(off.port, "/sub/page.txt/extra").status == 403


def test_conditions_apply_per_request(emberd, docroot):
    other = docroot.parent / "other"
    other.mkdir()
    (other / "index.html").write_text("other site\n")
    srv = emberd(MODULES + f'$HTTP["host"] == "other.example" {{\n'
                 f'  server.document-root = "{other}"\n}}\n'
                 '$HTTP["url"] =^ "/sub/" { url.access-deny = ( ".txt" ) }\n')
    assert get(srv.port, "/", {"Host": "other.example"}).body == b"other site\n"
    assert get(srv.port, "/", {"Host": "other.example:8080"}).body == b"other site\n"
    assert get(srv.port, "/").body == b"<h1>emberd</h1>\n"
    assert get(srv.port, "/sub/page.txt").status == 403


def test_remote_ip_condition(emberd):
    srv = emberd(MODULES + '$HTTP["remote-ip"] == "127.0.0.0/8" { url.access-deny = ( ".html" ) }\n')
    assert get(srv.port, "/index.html").status == 403


def test_error_file_prefix(emberd, tmp_path):
    (tmp_path / "err-404.html").write_text("custom not found\n")
    srv = emberd(MODULES + f'server.errorfile-prefix = "{tmp_path}/err-"\n')
    r = get(srv.port, "/missing")
    assert (r.status, r.body) == (404, b"custom not found\n")


def test_error_handler_404(emberd, docroot):
    (docroot / "404.html").write_text("handler page\n")
    srv = emberd(MODULES + 'server.error-handler-404 = "/404.html"\n')
    r = get(srv.port, "/missing")
    assert (r.status, r.body) == (404, b"handler page\n")


def test_server_tag(emberd):
    srv = emberd(MODULES + 'server.tag = ""\n')
    assert get(srv.port, "/").header("Server") is None
    srv = emberd(MODULES + 'server.tag = "device/1"\n')
    assert get(srv.port, "/").header("Server") == "device/1"


def test_curl(srv, docroot):
    out = subprocess.run(["curl", "-sS", "--fail", f"http://127.0.0.1:{srv.port}/data.bin"],
                         capture_output=True, check=True, timeout=60).stdout
    assert out == (docroot / "data.bin").read_bytes()
    out = subprocess.run(["curl", "-sS", "-I", f"http://127.0.0.1:{srv.port}/"],
                         capture_output=True, check=True, timeout=60).stdout
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")


def test_keep_alive_many_requests_on_one_connection(srv):
    reqs = b"".join(b"GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n" for _ in range(50))
    replies = parse_replies(raw(srv.port, reqs))
    assert [r.status for r in replies] == [200] * 50
    assert replies[-1].header("Connection") is None


def test_wrk_load_gets_only_200s(srv):
    import shutil

    if shutil.which("wrk") is None:
        pytest.fail("wrk is not installed (.ci/run installs it)")
    out = subprocess.run(["wrk", "-t1", "-c4", "-d2s", f"http://127.0.0.1:{srv.port}/index.html"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    assert "Non-2xx" not in out and "Socket errors" not in out
    assert int(out.split(" requests in")[0].split()[-1]) > 100


def test_chroot(emberd, tmp_path):
    import os

    if os.getuid() != 0:
        srv = emberd(f'server.chroot = "{tmp_path}"\n')
        assert "not running as root" in srv.log()
        return
    jail = tmp_path / "jail"
    (jail / "www").mkdir(parents=True)
    (jail / "www" / "index.html").write_text("inside the jail\n")
    srv = emberd(f'server.chroot = "{jail}"\nserver.document-root := "/www"\n')
    assert get(srv.port, "/index.html").body == b"inside the jail\n"
    assert os.readlink(f"/proc/{srv.pid}/root") == str(jail)
