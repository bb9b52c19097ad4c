"""One FastCGI request from the server's side, sans-IO.

``begin()`` gives BEGIN_REQUEST and the PARAMS stream, ``stdin()`` the
request body, ``stdin_end()`` its end; ``receive()`` turns the backend's
bytes into Stdout / Stderr / End events.  The request id is always 1, as in
lighttpd: one request at a time per backend connection (FastCGI
multiplexing is not used by any common backend).  With ``keep_conn`` the
connection survives END_REQUEST and carries the next request
(FCGI_KEEP_CONN), which lighttpd never asks for.

PARAMS are limited to 65535 bytes in all, as lighttpd does: variables that
do not fit are left out (``dropped`` says how many).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import records as r

REQUEST_ID = 1


@dataclass(frozen=True, slots=True)
class Stdout:
    data: bytes


@dataclass(frozen=True, slots=True)
class Stderr:
    data: bytes


@dataclass(frozen=True, slots=True)
class End:
    app_status: int
    protocol_status: int


Event = Stdout | Stderr | End


class FcgiRequest:
    def __init__(self, keep_conn: bool, role: int = r.RESPONDER) -> None:
        self.keep_conn = keep_conn
        self.role = role
        self.reader = r.RecordReader()
        self.dropped = 0
        self.ended = False

    def begin(self, params: list[tuple[str, str]]) -> bytes:
        out = [r.begin_request(REQUEST_ID, self.role, self.keep_conn)]
        body = bytearray()
        for name, value in params:
            pair = r.encode_pair(name.encode("latin-1", "replace"),
                                 value.encode("utf-8", "surrogateescape"))
            if len(body) + len(pair) > r.MAX_CONTENT:
                self.dropped += 1
                continue
            body += pair
        if body:
            out.append(r.encode(r.PARAMS, REQUEST_ID, body))
        out.append(r.encode(r.PARAMS, REQUEST_ID))
        return b"".join(out)

    def stdin(self, data: bytes | memoryview) -> bytes:
        return b"".join(r.encode_stream(r.STDIN, REQUEST_ID, data))

    def stdin_end(self) -> bytes:
        return r.encode(r.STDIN, REQUEST_ID)

    def abort(self) -> bytes:
        return r.encode(r.ABORT_REQUEST, REQUEST_ID)

    def receive(self, data: bytes | memoryview) -> list[Event]:
        """Events from the backend's bytes; FcgiError if they are not FastCGI."""
        out: list[Event] = []
        for rec in self.reader.feed(data):
            if rec.type in r.MANAGEMENT and rec.request_id == 0:
                continue  # GET_VALUES_RESULT, UNKNOWN_TYPE: nothing to do with them
            if rec.request_id != REQUEST_ID:
                raise r.FcgiError(f"record for request {rec.request_id} (expected 1)")
            if self.ended:
                raise r.FcgiError("record after END_REQUEST")
            if rec.type == r.STDOUT:
                if rec.content:
                    out.append(Stdout(rec.content))
            elif rec.type == r.STDERR:
                if rec.content:
                    out.append(Stderr(rec.content))
            elif rec.type == r.END_REQUEST:
                end = r.parse_end(rec.content)
                self.ended = True
                out.append(End(end.app_status, end.protocol_status))
            else:
                raise r.FcgiError(f"unexpected record type {rec.type} from a backend")
        return out
