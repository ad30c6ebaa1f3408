"""Split a byte stream into server-sent events without copying more than needed."""

from __future__ import annotations

import re

_BOUNDARY = re.compile(rb"\r\n\r\n|\n\n|\r\r")


class SseSplitter:
    """Feed raw chunks; get back complete events (each including its terminating blank line)."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        data = self._buffer + chunk if self._buffer else chunk
        events = []
        start = 0
        for match in _BOUNDARY.finditer(data):
            events.append(data[start : match.end()])
            start = match.end()
        self._buffer = data[start:]
        return events

    def rest(self) -> bytes:
        """Whatever arrived after the last complete event (a cut stream leaves a partial one)."""
        rest, self._buffer = self._buffer, b""
        return rest


def event_data(event: bytes) -> bytes:
    """The joined `data:` lines of one event."""
    lines = []
    for line in event.splitlines():
        if line.startswith(b"data:"):
            value = line[5:]
            lines.append(value[1:] if value.startswith(b" ") else value)
    return b"\n".join(lines)
