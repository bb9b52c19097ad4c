"""The FastCGI application side, driven with raw records over a socket pair."""

from __future__ import annotations

import asyncio
import socket

import pytest

from emberd.fcgi import records as r
from emberd.fcgi.responder import BODY_QUEUE, MAX_CONNS, Aborted, Reply, Request, serve


def params(**env: str) -> bytes:
    pairs = r.encode_pairs((k.encode(), v.encode()) for k, v in env.items())
    return r.encode(r.PARAMS, 1, pairs) + r.encode(r.PARAMS, 1)


def request(keep: bool = False, body: bytes = b"", **env: str) -> bytes:
    out = r.begin_request(1, r.RESPONDER, keep) + params(**env)
    out += b"".join(r.encode_stream(r.STDIN, 1, body)) if body else b""
    return out + r.encode(r.STDIN, 1)


class Peer:
    """The web server's end: send bytes, read records until END_REQUEST."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = r.RecordReader()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def until_end(self) -> tuple[bytes, list[r.Record]]:
        stdout = bytearray()
        seen: list[r.Record] = []
        while True:
            data = self.sock.recv(65536)
            assert data, "connection closed before END_REQUEST"
            for rec in self.reader.feed(data):
                seen.append(rec)
                if rec.type == r.STDOUT:
                    stdout += rec.content
                if rec.type in (r.END_REQUEST, r.GET_VALUES_RESULT, r.UNKNOWN_TYPE):
                    return bytes(stdout), seen

    def closed(self) -> bool:
        self.sock.settimeout(5)
        return self.sock.recv(1) == b""


def run_with(handler, test) -> None:  # type: ignore[no-untyped-def]
    """Serve ``handler`` on a unix socket in a thread-free loop while ``test(peer)`` runs."""

    async def main() -> None:
        listener = socket.socket(socket.AF_UNIX)
        listener.bind("\0emberd-test-" + str(id(handler)))
        listener.listen(4)
        task = asyncio.create_task(serve(listener, handler, logs.append))
        client = socket.socket(socket.AF_UNIX)
        client.connect(listener.getsockname())
        try:
            await asyncio.get_running_loop().run_in_executor(None, test, Peer(client))
        finally:
            client.close()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    logs: list[str] = []
    asyncio.run(main())


async def echo(req: Request) -> Reply:
    body = bytearray()
    while piece := await req.read():
        body += piece
    return Reply(200, [("X-Method", req.params["REQUEST_METHOD"])], bytes(body))


def test_request_reply_and_close_without_keep_conn():
    def test(peer: Peer) -> None:
        peer.send(request(body=b"hello", REQUEST_METHOD="POST", CONTENT_LENGTH="5"))
        out, recs = peer.until_end()
        assert out == b"Status: 200\r\nX-Method: POST\r\nContent-Length: 5\r\n\r\nhello"
        assert r.parse_end(recs[-1].content) == r.EndRequest(0, r.REQUEST_COMPLETE)
        assert peer.closed()

    run_with(echo, test)


def test_keep_conn_serves_several_requests_byte_by_byte():
    def test(peer: Peer) -> None:
        for i in range(3):
            for b in request(keep=True, body=b"x" * i, REQUEST_METHOD="PUT"):
                peer.send(bytes([b]))
            out, _ = peer.until_end()
            assert out.endswith(b"\r\n\r\n" + b"x" * i)

    run_with(echo, test)


def test_management_records_and_refusals():
    def test(peer: Peer) -> None:
        peer.send(r.encode(r.GET_VALUES, 0, r.encode_pairs([(b"FCGI_MPXS_CONNS", b""),
                                                            (b"FCGI_MAX_CONNS", b"")])))
        _, recs = peer.until_end()
        assert dict(r.decode_pairs(recs[-1].content)) == {b"FCGI_MPXS_CONNS": b"0",
                                                         b"FCGI_MAX_CONNS": str(MAX_CONNS).encode()}
        peer.send(r.encode(77, 0, b""))
        _, recs = peer.until_end()
        assert recs[-1].type == r.UNKNOWN_TYPE and recs[-1].content[0] == 77
        peer.send(r.begin_request(1, r.AUTHORIZER, True))
        _, recs = peer.until_end()
        assert r.parse_end(recs[-1].content).protocol_status == r.UNKNOWN_ROLE
        # a second request id while one is active
        peer.send(r.begin_request(1, r.RESPONDER, True) + r.encode(r.BEGIN_REQUEST, 2,
                                                                  bytes(8)))
        _, recs = peer.until_end()
        assert recs[-1].request_id == 2
        assert r.parse_end(recs[-1].content).protocol_status == r.CANT_MPX_CONN

    run_with(echo, test)


def test_abort_reaches_the_handler():
    seen: list[str] = []

    async def slow(req: Request) -> Reply:
        try:
            while await req.read():
                pass
        except Aborted:
            seen.append("aborted")
            raise
        return Reply(200)

    def test(peer: Peer) -> None:
        peer.send(r.begin_request(1, r.RESPONDER, True) + params(REQUEST_METHOD="POST")
                  + r.encode(r.STDIN, 1, b"part"))
        peer.send(r.encode(r.ABORT_REQUEST, 1))
        out, recs = peer.until_end()
        assert out == b"" and recs[-1].type == r.END_REQUEST

    run_with(slow, test)
    assert seen == ["aborted"]


def test_unread_body_back_pressure_and_early_reply():
    """A handler that answers without reading: the body queue must not hold the reader."""

    async def early(req: Request) -> Reply:
        await asyncio.sleep(0.2)  # the body piles up meanwhile (bounded)
        return Reply(413)

    def test(peer: Peer) -> None:
        peer.send(r.begin_request(1, r.RESPONDER, True) + params(REQUEST_METHOD="POST"))
        big = b"".join(r.encode_stream(r.STDIN, 1, b"b" * (BODY_QUEUE * 4)))
        peer.sock.settimeout(10)
        peer.send(big + r.encode(r.STDIN, 1))
        out, _ = peer.until_end()
        assert out.startswith(b"Status: 413")

    run_with(early, test)


def test_garbage_closes_the_connection():
    def test(peer: Peer) -> None:
        peer.send(b"GET / HTTP/1.1\r\n\r\n")
        assert peer.closed()

    run_with(echo, test)


def test_handler_bug_is_a_500():
    async def broken(req: Request) -> Reply:
        raise RuntimeError("bug")

    def test(peer: Peer) -> None:
        peer.send(request(REQUEST_METHOD="GET"))
        out, _ = peer.until_end()
        assert out.startswith(b"Status: 500")

    run_with(broken, test)
