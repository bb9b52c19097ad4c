"""A bare asyncio + h2 static file server: the HTTP/2 floor emberd is compared with.

Prior knowledge only; one file per request, read whole and sent within the
flow-control window (the pattern of h2's asyncio example, with the window
handled).  Usage: python -m tests.bench.bare_h2 DOCROOT PORT
"""

from __future__ import annotations

import asyncio
import os
import sys

import h2.config
import h2.connection
import h2.events


class BareH2(asyncio.Protocol):
    def __init__(self, root: str) -> None:
        self.root = root
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None))
        self.pending: dict[int, memoryview] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.conn.initiate_connection()
        self.transport.write(self.conn.data_to_send())

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.transport.write(self.conn.data_to_send())
            self.transport.close()
            return
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                path = dict(ev.headers)[b":path"].decode()
                try:
                    with open(os.path.join(self.root, path.lstrip("/")), "rb") as f:
                        body = f.read()
                    status = b"200"
                except OSError:
                    body, status = b"not found\n", b"404"
                self.conn.send_headers(ev.stream_id, [
                    (b":status", status), (b"content-length", str(len(body)).encode()),
                    (b"content-type", b"text/plain")])
                self.pending[ev.stream_id] = memoryview(body)
            elif isinstance(ev, h2.events.DataReceived):
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamReset):
                self.pending.pop(ev.stream_id, None)
        self.send_pending()

    def send_pending(self) -> None:
        for sid, view in list(self.pending.items()):
            n = min(self.conn.local_flow_control_window(sid),
                    self.conn.max_outbound_frame_size, len(view))
            if n <= 0:
                continue
            self.conn.send_data(sid, view[:n], end_stream=n == len(view))
            if n == len(view):
                del self.pending[sid]
            else:
                self.pending[sid] = view[n:]
        self.transport.write(self.conn.data_to_send())


async def main(root: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: BareH2(root), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
