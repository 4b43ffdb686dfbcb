"""Predictions from image files, for `SimtrainClient` (feature rows: `client.predict`, core.client.artifacts).

    client.predict_images(job_id, ["cat.png", "dog.jpg"])            # classes, probabilities, predictions
    client.predict_images(job_id, [("cam-1.png", png_bytes)])        # bytes in memory, with a name

The files go as multipart `files` (PNG or JPEG); the API decodes each within its pixel bound and turns
it into an array exactly as the job's training images were (the model's `preprocessing`: size, resize
mode, channels), so a file predicts what its stored pixels would. One prediction per file, in order. A
model trained on feature rows answers 422 naming `files`. A prediction stores nothing, so it is retried
like a GET.
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import IO

from core.client.base import BaseClient, seg
from core.client.types import Prediction

__all__ = ["ImageInput", "PredictMixin"]

ImageInput = str | os.PathLike | tuple[str, bytes]
"""An image file's path, or (file name, its bytes)."""


def _part(image: ImageInput, stack: ExitStack) -> tuple[str, tuple[str, bytes | IO[bytes], str]]:
    if isinstance(image, tuple):
        name, data = image
    else:
        path = Path(image)
        name, data = path.name, stack.enter_context(path.open("rb"))
    return "files", (name, data, mimetypes.guess_type(name)[0] or "application/octet-stream")


class PredictMixin(BaseClient):
    def predict_images(self, job_id: str, images: Sequence[ImageInput]) -> Prediction:
        """PNG / JPEG files -> classes, probabilities and the predicted class of each file (in order);
        409 (ConflictError) unless the job succeeded, 422 (ValidationError, field `files`) for a file that
        is not an image, too many or too large ones, or a model trained on feature rows."""
        with ExitStack() as stack:
            files = [_part(image, stack) for image in images]
            return self._json("POST", f"/v1/jobs/{seg(job_id)}/predict", files=files, idempotent=True)
