"""Upload a finished run's artifacts to storage and add their `job_artifacts` rows to the session.

    names = upload_artifacts(session, storage, job_id, result)   # rows are committed by jobs.finish

The files come from `core.artifacts.write_artifacts` (written to a temporary directory, removed after)
and are stored at `jobs/{job_id}/artifacts/{name}` with their size, SHA-256 and content type.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from sqlalchemy.orm import Session

from core.db import jobs as jobdb

__all__ = ["CONTENT_TYPES", "upload_artifacts"]

CONTENT_TYPES = {
    ".safetensors": "application/octet-stream",
    ".json": "application/json",
    ".onnx": "application/octet-stream",
    ".png": "image/png",
    ".csv": "text/csv",
    ".txt": "text/plain",
}


def upload_artifacts(session: Session, storage, job_id: str, result) -> list[str]:
    """Write the artifacts, upload them and add their rows to `session` (committed by `finish`)."""
    from core.artifacts import write_artifacts

    names = []
    with tempfile.TemporaryDirectory(prefix=f"simtrain-{job_id[:8]}-") as tmp:
        for path in write_artifacts(result, Path(tmp)):
            path = Path(path)
            key, sha256 = f"jobs/{job_id}/artifacts/{path.name}", _sha256(path)
            storage.put_file(key, path)
            jobdb.record_artifact(
                session,
                job_id,
                path.name,
                size=path.stat().st_size,
                sha256=sha256,
                content_type=CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream"),
                storage_key=key,
            )
            names.append(path.name)
    return names


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
