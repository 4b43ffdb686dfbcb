"""Server-Sent Events read from the lines of a streamed response (the job events stream).

    for kind, data in sse_messages(response.iter_lines()):
        event = json.loads(data)

Yields `(event type, data)` per message: `data:` lines joined by newlines, `event:` defaulting to
"message"; comment lines (`: keepalive`) and messages without data are skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

__all__ = ["sse_messages"]


def sse_messages(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    event_type, data_lines = "message", []
    for line in lines:
        if line == "":
            if data_lines:
                yield event_type, "\n".join(data_lines)
            event_type, data_lines = "message", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            event_type = line[6:].strip()
        elif line.startswith("data:"):
            data_lines.append(line[5:].removeprefix(" "))
    if data_lines:
        yield event_type, "\n".join(data_lines)
