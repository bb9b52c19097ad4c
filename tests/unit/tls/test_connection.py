"""The connection's TLS path: 16 KiB reads, chunks free once encrypted, ALPN picks the driver.

The transport queues what it is given without copying (as Python >= 3.12
does), so a chunk recycled while its bytes were still queued would show up as
corrupted output here.
"""

from __future__ import annotations

from emberd.core.chunk import ChunkPool
from emberd.core.connection import TLS_READ, Connection
from emberd.core.stats import Stats

from ..core.test_connection_write import QueueingTransport as Queueing
from .pki import MemoryClient, Pki, endpoint


class QueueingTransport(Queueing):
    def writelines(self, parts):  # type: ignore[no-untyped-def]
        for p in parts:
            self.write(p)

    def close(self) -> None:
        pass


class Recorder:
    def __init__(self) -> None:
        self.data = bytearray()

    def data_received(self, data: memoryview) -> None:
        self.data += data

    def eof_received(self) -> None:
        self.data += b"<EOF>"

    def close(self) -> None:
        pass


class FakeServer:
    def __init__(self, chunk_size: int) -> None:
        stats = Stats()
        self.log: list[str] = []
        self.shared = type("S", (), {"pool": ChunkPool(chunk_size, 4 * chunk_size, 0, stats),
                                     "stats": stats})()
        self.runtime = type("R", (), {"log": lambda _, w, m: self.log.append(m),
                                      "config": {"server.max-read-idle": 60}})()
        self.alpn: list[bool] = []
        self.driver = Recorder()

    def driver_for(self, conn: Connection, h2: bool) -> Recorder:
        self.alpn.append(h2)
        return self.driver


def connect(tmp_path, chunk_size: int = 65536):
    pki = Pki(tmp_path)
    leaf = pki.server("localhost")
    ep = endpoint(tmp_path, f'ssl.engine = "enable"\nssl.pemfile = "{leaf.both}"\n')
    server = FakeServer(chunk_size)
    conn = Connection(server, "127.0.0.1:443", ep)  # type: ignore[arg-type]
    conn.transport = transport = QueueingTransport()
    from emberd.tls.channel import TlsChannel

    conn.channel = TlsChannel(ep, "192.0.2.1")
    client = MemoryClient(pki.ca_file)

    def wire(data: bytes) -> None:
        while data:
            view = conn.get_buffer(-1)
            n = min(len(view), len(data))
            view[:n] = data[:n]
            conn.buffer_updated(n)
            data = data[n:]

    for _ in range(10):
        wire(client.step())
        transport.drain()
        client.incoming.write(bytes(transport.sent))
        transport.sent.clear()
        if client.done and server.alpn:
            break
    return conn, server, client, transport, wire


def test_reads_capped_and_alpn_chooses_the_driver(tmp_path):
    conn, server, client, _, wire = connect(tmp_path)
    assert server.alpn == [True]  # h2
    assert len(conn.get_buffer(-1)) == TLS_READ  # the pool's chunks are 64 KiB here
    data = bytes(range(256)) * 400
    wire(client.send(data))
    assert bytes(server.driver.data) == data
    # ciphertext and plaintext shared one pooled chunk, which is back in the pool
    assert server.shared.stats.chunks_used == 0 and server.shared.stats.chunks_high_water == 1


def test_chunks_return_to_the_pool_at_once(tmp_path):
    conn, server, client, transport, _ = connect(tmp_path, chunk_size=1024)
    pool = server.shared.pool
    conn.get_buffer(-1)  # hold one, as the event loop does
    used = server.shared.stats.chunks_used
    expected = bytearray()
    for i in range(10):
        c = pool.acquire()
        c.mem[:] = bytes([65 + i]) * 1024
        c.end = 1024
        expected += c.mem
        conn.write_chunk(c)
        scratch = pool.acquire()  # whatever is free is overwritten at once
        scratch.mem[:] = b"#" * 1024
        pool.release(scratch)
    assert server.shared.stats.chunks_used == used
    transport.drain()
    client.incoming.write(bytes(transport.sent))
    assert client.recv_all() == bytes(expected)


def test_close_sends_close_notify_and_a_failure_is_logged(tmp_path):
    conn, server, _, _, wire = connect(tmp_path)
    wire(b"\x17\x03\x03\x7f\xff")
    assert conn.closed and any("oversized TLS record" in m for m in server.log)
    (tmp_path / "again").mkdir()
    conn2, _, client2, transport2, _ = connect(tmp_path / "again")
    transport2.sent.clear()
    conn2.close()
    transport2.drain()
    client2.incoming.write(bytes(transport2.sent))
    assert client2.obj.read(10) == b""  # close_notify
