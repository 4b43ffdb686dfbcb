"""A small typed Python client for the simtrain REST API (httpx).

    from core.client import SimtrainClient
    with SimtrainClient("http://127.0.0.1:8000", api_key) as client:
        job = client.create_job({"dataset": "builtin:digits", "loss": {"kind": "cross_entropy"}})
        job = client.wait(job["id"])
        client.download_artifact(job["id"], "model.onnx", "model.onnx")

Every non-2xx answer raises `ApiError` (a `SimtrainError` carrying the HTTP status, the error `code`, the
`message` and `details` of the body).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from core.errors import SimtrainError

__all__ = ["SimtrainClient", "ApiError", "TERMINAL_STATUSES"]

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
JSONDict = dict[str, Any]


class ApiError(SimtrainError):
    """An error answer of the API."""

    def __init__(
        self, status: int, code: str, message: str, details: Any = None, headers: Any = None
    ) -> None:
        super().__init__(message, details=details)
        self.status = status
        self.code = code
        self.headers = dict(headers or {})

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"


class SimtrainClient:
    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        """`http`: an httpx.Client to send through (e.g. a TestClient); its own base URL is used."""
        headers = {"User-Agent": "simtrain-client/0.1"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        if http is not None:
            http.headers.update(headers)
            self._http = http
        else:
            self._http = httpx.Client(
                base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
            )

    # ------------------------------------------------------------------------------------ plumbing

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SimtrainClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _raise_for(response: httpx.Response) -> None:
        if response.is_success:
            return
        try:
            response.read()
            error = response.json().get("error") or {}
        except (ValueError, AttributeError, httpx.HTTPError):
            error = {}
        raise ApiError(
            response.status_code,
            str(error.get("code") or "http_error"),
            str(error.get("message") or response.reason_phrase or "request failed"),
            error.get("details"),
            response.headers,
        )

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        self._raise_for(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    # ------------------------------------------------------------------------------------ service

    def health(self) -> JSONDict:
        return self._request("GET", "/healthz")

    def ready(self) -> JSONDict:
        return self._request("GET", "/readyz")

    # ------------------------------------------------------------------------------------ datasets

    def upload_dataset(
        self, path: str | os.PathLike, *, name: str | None = None, label_column: str | None = None
    ) -> JSONDict:
        path = Path(path)
        data = {k: v for k, v in {"name": name, "label_column": label_column}.items() if v is not None}
        with path.open("rb") as f:
            return self._request(
                "POST", "/v1/datasets", files={"file": (path.name, f, "application/octet-stream")}, data=data
            )

    def list_datasets(self) -> list[JSONDict]:
        return self._request("GET", "/v1/datasets")["items"]

    def builtin_datasets(self) -> list[JSONDict]:
        return self._request("GET", "/v1/datasets/builtin")["items"]

    def get_dataset(self, dataset_id: str) -> JSONDict:
        return self._request("GET", f"/v1/datasets/{dataset_id}")

    def delete_dataset(self, dataset_id: str) -> None:
        self._request("DELETE", f"/v1/datasets/{dataset_id}")

    # ------------------------------------------------------------------------------------ jobs

    def create_job(self, spec: JSONDict, *, idempotency_key: str | None = None) -> JSONDict:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self._request("POST", "/v1/jobs", json=spec, headers=headers)

    def get_job(self, job_id: str) -> JSONDict:
        return self._request("GET", f"/v1/jobs/{job_id}")

    def list_jobs(self, *, status: str | None = None, limit: int = 20, cursor: str | None = None) -> JSONDict:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        if cursor:
            params["cursor"] = cursor
        return self._request("GET", "/v1/jobs", params=params)

    def iter_jobs(self, *, status: str | None = None, page_size: int = 100) -> Iterator[JSONDict]:
        cursor = None
        while True:
            page = self.list_jobs(status=status, limit=page_size, cursor=cursor)
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def cancel(self, job_id: str) -> JSONDict:
        return self._request("POST", f"/v1/jobs/{job_id}/cancel")

    def wait(self, job_id: str, *, timeout: float | None = None, poll: float = 1.0) -> JSONDict:
        """Poll until the job is succeeded, failed or cancelled; TimeoutError after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get_job(job_id)
            if job["status"] in TERMINAL_STATUSES:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} is still {job['status']} after {timeout} s")
            time.sleep(poll)

    def events(self, job_id: str, *, after: int = 0, limit: int = 500) -> list[JSONDict]:
        return self._request("GET", f"/v1/jobs/{job_id}/events", params={"after": after, "limit": limit})[
            "items"
        ]

    def stream_events(
        self, job_id: str, *, after: int = 0, max_seconds: float = 3600.0, reconnect: bool = True
    ) -> Iterator[JSONDict]:
        """The job's events as they happen (Server-Sent Events), until the terminal state event.

        A dropped connection is resumed from the last event id when `reconnect` is true."""
        last = after
        while True:
            done = False
            try:
                with self._http.stream(
                    "GET",
                    f"/v1/jobs/{job_id}/events/stream",
                    params={"after": last, "max_seconds": max_seconds},
                    headers={"Accept": "text/event-stream", "Last-Event-ID": str(last)},
                    timeout=httpx.Timeout(self._http.timeout.connect or 30.0, read=60.0),
                ) as response:
                    self._raise_for(response)
                    event_type, data_lines = "message", []
                    for line in response.iter_lines():
                        if line == "":
                            if data_lines and event_type not in ("timeout",):
                                event = json.loads("\n".join(data_lines))
                                last = max(last, int(event.get("id", last)))
                                yield event
                                if (
                                    event.get("kind") == "state"
                                    and (event.get("data") or {}).get("status") in TERMINAL_STATUSES
                                ):
                                    done = True
                            event_type, data_lines = "message", []
                        elif line.startswith(":"):
                            continue
                        elif line.startswith("event:"):
                            event_type = line[6:].strip()
                        elif line.startswith("data:"):
                            data_lines.append(line[5:].lstrip())
                    if response.status_code == 200 and not done:
                        # the server ends the stream at a terminal state (also one sent before `after`)
                        job = self.get_job(job_id)
                        done = job["status"] in TERMINAL_STATUSES
            except (httpx.TransportError, httpx.RemoteProtocolError):
                if not reconnect:
                    raise
                time.sleep(1.0)
            if done or not reconnect:
                return

    def metrics(self, job_id: str) -> JSONDict:
        return self._request("GET", f"/v1/jobs/{job_id}/metrics")

    # ------------------------------------------------------------------------------------ artifacts

    def list_artifacts(self, job_id: str) -> list[JSONDict]:
        return self._request("GET", f"/v1/jobs/{job_id}/artifacts")["items"]

    def download_artifact(self, job_id: str, name: str, path: str | os.PathLike) -> Path:
        """Stream an artifact to `path` (written atomically); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._http.stream("GET", f"/v1/jobs/{job_id}/artifacts/{name}") as response:
            self._raise_for(response)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".download-")
            try:
                with os.fdopen(fd, "wb") as f:
                    for chunk in response.iter_bytes():
                        f.write(chunk)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return path

    def predict(self, job_id: str, inputs: list[Any]) -> JSONDict:
        return self._request("POST", f"/v1/jobs/{job_id}/predict", json={"inputs": inputs})
