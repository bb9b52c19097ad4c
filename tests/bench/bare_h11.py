"""A bare asyncio + h11 static file server: the floor emberd is compared with.

One file per request, read whole, answered through h11; no configuration,
no limits, no logging.  Usage: python -m tests.bench.bare_h11 DOCROOT PORT
"""

from __future__ import annotations

import asyncio
import os
import sys

import h11


class Bare(asyncio.Protocol):
    def __init__(self, root: str) -> None:
        self.root = root
        self.conn = h11.Connection(h11.SERVER)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.conn.receive_data(data)
        while True:
            ev = self.conn.next_event()
            if ev is h11.NEED_DATA or ev is h11.PAUSED:
                return
            if isinstance(ev, h11.Request):
                path = os.path.join(self.root, ev.target.decode().lstrip("/"))
                try:
                    with open(path, "rb") as f:
                        body = f.read()
                    status = 200
                except OSError:
                    body, status = b"not found\n", 404
                out = self.conn.send(h11.Response(
                    status_code=status, reason=b"OK",
                    headers=[(b"Content-Length", str(len(body)).encode()),
                             (b"Content-Type", b"text/plain")]))
                out += self.conn.send(h11.Data(data=body))
                out += self.conn.send(h11.EndOfMessage())
                self.transport.write(out)  # type: ignore[attr-defined]
            elif isinstance(ev, h11.EndOfMessage):
                if self.conn.our_state is h11.MUST_CLOSE:
                    self.transport.close()  # type: ignore[attr-defined]
                    return
                self.conn.start_next_cycle()
            elif isinstance(ev, h11.ConnectionClosed):
                self.transport.close()  # type: ignore[attr-defined]
                return


async def main(root: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Bare(root), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
