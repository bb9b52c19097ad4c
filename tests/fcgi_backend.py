"""A FastCGI responder whose behaviour the query string selects (like lighttpd's
tests/fcgi-responder.c), for fault tests of mod_fastcgi.

Run as ``python -m tests.fcgi_backend`` with the listening socket on fd 0
(emberd's bin-path), or ``python -m tests.fcgi_backend /path/to/socket``.
One thread per connection; FCGI_KEEP_CONN is honoured unless the query has
``close``.

Query words (joined with '&'):
  echo          body: the request body          env      body: the CGI environment
  status=N      Status: N                        big=N    N bytes of body
  garbage       a response head that is not CGI  nohead   END_REQUEST without output
  sleep=S       wait S seconds before answering  die      exit after the head
  vanish        close the connection at once     endless  write until the peer stops
  stderr        a line on STDERR                 close    ignore FCGI_KEEP_CONN
  noread        never read the request body      sendfile=PATH  X-Sendfile: PATH
  length=N      Content-Length: N (a lie, if it disagrees with the body)
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from urllib.parse import parse_qsl

from emberd.fcgi import records as r


def _send(conn: socket.socket, rtype: int, data: bytes) -> None:
    for rec in r.encode_stream(rtype, 1, data):
        conn.sendall(rec)


def _answer(conn: socket.socket, env: dict[str, str], body: bytes) -> bool:
    """Answer one request; False when the connection must close."""
    words = dict(parse_qsl(env.get("QUERY_STRING", ""), keep_blank_values=True))
    if "sleep" in words:
        time.sleep(float(words["sleep"]))
    if "vanish" in words:
        return False
    if "stderr" in words:
        _send(conn, r.STDERR, b"something went wrong\n")
    if "nohead" in words:
        conn.sendall(r.end_request(1))
        return "close" not in words
    if "garbage" in words:
        _send(conn, r.STDOUT, b"this is not a header\r\n\r\nbody")
        conn.sendall(r.end_request(1))
        return "close" not in words
    head = [f"Status: {words.get('status', '200')}", "Content-Type: text/plain",
            f"X-Pid: {os.getpid()}", f"X-Connections: {OPEN[0]}"]
    if "sendfile" in words:
        head.append(f"X-Sendfile: {words['sendfile']}")
    if "length" in words:
        head.append(f"Content-Length: {words['length']}")
    _send(conn, r.STDOUT, ("\r\n".join(head) + "\r\n\r\n").encode())
    if "die" in words:
        os._exit(3)
    if "echo" in words:
        _send(conn, r.STDOUT, body)
    if "env" in words:
        _send(conn, r.STDOUT, "".join(f"{k}={v}\n" for k, v in env.items()).encode())
    if "big" in words:
        block = bytes(range(256)) * 256
        left = int(words["big"])
        while left > 0:
            _send(conn, r.STDOUT, block[: min(left, len(block))])
            left -= len(block)
    if "endless" in words:
        block = b"x" * 65535
        try:
            while True:
                _send(conn, r.STDOUT, block)
        except OSError:
            return False
    conn.sendall(r.end_request(1))
    return "close" not in words


OPEN = [0]  # connections open now (reported as X-Connections)
OPEN_LOCK = threading.Lock()


def serve_connection(conn: socket.socket) -> None:
    with OPEN_LOCK:
        OPEN[0] += 1
    try:
        _serve(conn)
    finally:
        with OPEN_LOCK:
            OPEN[0] -= 1


def _serve(conn: socket.socket) -> None:
    reader = r.RecordReader()
    env: dict[str, str] = {}
    params = bytearray()
    body = bytearray()
    keep = False
    noread = False
    try:
        while True:
            data = conn.recv(65536)
            if not data:
                return
            for rec in reader.feed(data):
                if rec.type == r.BEGIN_REQUEST:
                    keep = r.parse_begin(rec.content).keep_conn
                    env, params, body = {}, bytearray(), bytearray()
                elif rec.type == r.PARAMS:
                    if rec.content:
                        params += rec.content
                        continue
                    env = {k.decode(): v.decode("utf-8", "replace")
                           for k, v in r.decode_pairs(bytes(params))}
                    noread = "noread" in env.get("QUERY_STRING", "")
                    if noread:
                        time.sleep(3600)  # never read: the server's write timeout must act
                elif rec.type == r.STDIN:
                    if rec.content:
                        body += rec.content
                        continue
                    if not _answer(conn, env, bytes(body)) or not keep:
                        return
                elif rec.type == r.ABORT_REQUEST:
                    conn.sendall(r.end_request(1))
    except (OSError, r.FcgiError):
        return
    finally:
        conn.close()


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(argv[1])
        listener.listen(64)
    else:
        listener = socket.socket(fileno=0)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve_connection, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
