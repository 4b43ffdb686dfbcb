"""A multipart/form-data upload read as it streams in: file parts go straight to scratch files, hashed and
bounded on the way (`core.data.receive.FileReceiver`), small text fields are kept. Nothing holds a whole
file in memory: parsing happens on the event loop, the disk writes in a worker thread, a MiB at a time.

    with contextlib.ExitStack() as scratch:       # the scratch files go when it closes, whatever happened
        form = await receive_form(request, file_fields=("file", "labels"), scratch=scratch,
                                  directory=tmpdir, max_file_bytes=settings.max_upload_bytes)
        form.files["file"]      # core.data.receive.UploadedFile(path, filename, sha256, size)
        form.fields["name"]     # str

A client that disconnects mid-body raises `starlette.requests.ClientDisconnect` out of here; the caller's
ExitStack then removes what was received. A body that is not multipart, or is malformed, is a 422 naming
`file`; a text field over `max_field_bytes`, or more than `max_parts` parts, a 422 naming the field.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from python_multipart.multipart import FormParserError, MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from core.data.receive import FileReceiver, UploadedFile
from core.errors import InvalidInput

__all__ = ["ReceivedForm", "receive_form"]

_FLUSH_BYTES = 1 << 20


@dataclass
class ReceivedForm:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, UploadedFile] = field(default_factory=dict)


@dataclass
class _Part:
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    name: str = ""
    receiver: FileReceiver | None = None
    text: bytearray | None = None
    ignored: bool = False


class _FormReader:
    """The callbacks of python-multipart's parser; file data waits in `pending` for the next flush."""

    def __init__(self, file_fields, scratch, directory, max_file_bytes, max_field_bytes, max_parts) -> None:
        self.file_fields, self.scratch, self.directory = set(file_fields), scratch, directory
        self.max_file_bytes, self.max_field_bytes, self.max_parts = max_file_bytes, max_field_bytes, max_parts
        self.form = ReceivedForm()
        self.receivers: dict[str, FileReceiver] = {}
        self.pending: list[tuple[FileReceiver, bytes]] = []
        self.pending_bytes = 0
        self.parts = 0
        self.ended = False
        self.part = _Part()
        self._header_name = self._header_value = b""

    def callbacks(self) -> dict:
        names = ("part_begin", "part_data", "part_end", "header_field", "header_value", "header_end",
                 "headers_finished", "end")  # fmt: skip
        return {f"on_{n}": getattr(self, f"on_{n}") for n in names}

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > self.max_parts:
            raise InvalidInput("file", f"at most {self.max_parts} form parts")
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self.part.headers.append((self._header_name.lower(), self._header_value))
        self._header_name = self._header_value = b""

    def on_headers_finished(self) -> None:
        disposition = next((v for k, v in self.part.headers if k == b"content-disposition"), b"")
        _, options = parse_options_header(disposition)
        name = options.get(b"name", b"").decode("utf-8", "replace")
        self.part.name = name
        if b"filename" not in options:
            self.part.text = bytearray()
        elif name in self.file_fields and name not in self.receivers:
            self.part.receiver = self._receiver(name, options[b"filename"].decode("utf-8", "replace"))
        else:
            self.part.ignored = True  # an unknown or repeated file part: its bytes are dropped

    def _receiver(self, name: str, filename: str) -> FileReceiver:
        suffix = PurePosixPath(filename.replace("\\", "/")).suffix[:16]
        fd, path = tempfile.mkstemp(prefix=f"upload-{name}-", suffix=suffix, dir=self.directory)
        os.close(fd)
        self.scratch.callback(Path(path).unlink, missing_ok=True)
        receiver = FileReceiver(Path(path), filename, self.max_file_bytes)
        self.scratch.callback(receiver.close)
        self.receivers[name] = receiver
        return receiver

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.part.receiver is not None:
            self.pending.append((self.part.receiver, data[start:end]))
            self.pending_bytes += end - start
        elif self.part.text is not None:
            self.part.text += data[start:end]
            if len(self.part.text) > self.max_field_bytes:
                raise InvalidInput(
                    self.part.name or "file", f"a form field of at most {self.max_field_bytes} bytes"
                )

    def on_part_end(self) -> None:
        if self.part.text is not None:
            self.form.fields.setdefault(self.part.name, self.part.text.decode("utf-8", "replace"))

    def on_end(self) -> None:
        self.ended = True

    def write_pending(self) -> None:
        """In a worker thread: the file data received since the last call."""
        pending, self.pending, self.pending_bytes = self.pending, [], 0
        for receiver, data in pending:
            receiver.write(data)


def _boundary(request: Request) -> bytes:
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data":
        raise InvalidInput("file", "send the file as multipart/form-data, in a part named `file`")
    boundary = params.get(b"boundary")
    if not boundary:
        raise InvalidInput("file", "a multipart/form-data body needs a boundary")
    return boundary


async def receive_form(
    request: Request,
    *,
    file_fields: Collection[str],
    scratch: contextlib.ExitStack,
    directory: str | None,
    max_file_bytes: int,
    max_field_bytes: int = 16 * 1024,
    max_parts: int = 32,
) -> ReceivedForm:
    """Read the request's multipart body; see the module docstring."""
    reader = _FormReader(file_fields, scratch, directory, max_file_bytes, max_field_bytes, max_parts)
    try:
        parser = MultipartParser(_boundary(request), reader.callbacks())
        async for chunk in request.stream():
            parser.write(chunk)
            if reader.pending_bytes >= _FLUSH_BYTES:
                await run_in_threadpool(reader.write_pending)
        parser.finalize()
    except FormParserError as e:
        raise InvalidInput("file", f"malformed multipart body: {e}") from e
    if not reader.ended:
        raise InvalidInput("file", "the body ends before the closing boundary of the multipart form")
    await run_in_threadpool(reader.write_pending)
    reader.form.files = {name: r.finish() for name, r in reader.receivers.items()}
    return reader.form
