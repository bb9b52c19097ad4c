"""What can go wrong with TLS: at start-up (configuration) and on a connection.

Both backends translate their library's exceptions into these, so the
connection layer handles one small set:

* ``TlsFailure`` -- the connection cannot go on (a failed handshake, a bad
  record, a protocol violation); its text is the log line.
* ``TlsClosed`` -- the peer sent close_notify: the end of its data.
* ``TlsSetupError`` -- a configuration that cannot be served (a missing or
  unreadable file, a key that does not match its certificate, a broken
  chain); every problem found is listed, each naming its file.
"""

from __future__ import annotations


class TlsFailure(Exception):
    """The connection cannot continue; ``str()`` says why (for the error log)."""


class TlsClosed(Exception):
    """The peer closed its side with close_notify."""


class NotTls(TlsFailure):
    """The first bytes are not a TLS handshake; ``http`` if they look like plain HTTP."""

    def __init__(self, reason: str, http: bool = False) -> None:
        super().__init__(reason)
        self.http = http


class TlsSetupError(Exception):
    """TLS settings that cannot be served; ``problems`` lists each one."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
