"""`core.client.SimtrainClient` covers every resource of the API: comparisons, the similarity preview,
dataset pages, get and delete with an upload's progress, health and readiness (against the real app on a
real HTTP server; jobs, artifacts and predictions: tests/api/test_client_cli.py)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from core.client import ConflictError, NotFoundError, SimtrainClient, ValidationError
from core.status import COMPARISON_TERMINAL

COMPARISON = {
    "dataset": "builtin:digits",
    "classes": ["0", "1", "2"],
    "similarity": {"kind": "ordinal"},
    "model": {"kind": "linear"},
    "training": {"epochs": 1},
    "variants": [{"name": "simloss", "loss": {"kind": "simloss"}}],
    "seeds": 1,
}


def _npz(path, n: int, offset: int = 0):
    buf = io.BytesIO()
    x = np.arange(2 * n, dtype=np.float32).reshape(n, 2) + offset
    np.savez(buf, x=x, y=np.arange(n) % 2)
    path.write_bytes(buf.getvalue())
    return path


def test_comparisons(live):
    url, svc = live
    with SimtrainClient(url, svc.key_a) as client:
        comp = client.create_comparison(COMPARISON, idempotency_key="c1")
        assert client.create_comparison(COMPARISON, idempotency_key="c1")["id"] == comp["id"]
        assert comp["status"] == "running" and len(comp["children"]) == 2
        assert [c["id"] for c in client.list_comparisons()["items"]] == [comp["id"]]
        assert [c["id"] for c in client.iter_comparisons(page_size=1)] == [comp["id"]]
        with pytest.raises(ConflictError):
            client.comparison_report(comp["id"])  # not finished
        with pytest.raises(TimeoutError):
            client.wait_comparison(comp["id"], timeout=0.2, poll=0.1)
        assert client.cancel_comparison(comp["id"])["status"] == "cancelled"
        done = client.wait_comparison(comp["id"], timeout=5, poll=0.1)
        assert done["status"] in COMPARISON_TERMINAL
        snapshots = list(client.watch_comparison(comp["id"], interval=0.1))
        assert [s["status"] for s in snapshots] == ["cancelled"]
        with pytest.raises(NotFoundError):
            client.get_comparison("00000000-0000-4000-8000-000000000000")
        with pytest.raises(ValidationError) as err:
            client.create_comparison({**COMPARISON, "variants": [{"name": "x", "loss": {"kind": "nope"}}]})
        assert err.value.field.startswith("variants.0.loss")


def test_similarity_preview_as_json_and_png(live):
    url, svc = live
    with SimtrainClient(url, svc.key_a) as client:
        spec = {"kind": "ordinal", "reduction_factor": 0.5}
        preview = client.similarity_preview(["low", "mid", "high"], spec)
        assert preview["classes"] == ["low", "mid", "high"] and preview["matrix"][0] == [1.0, 0.5, 0.25]
        png = client.similarity_preview_png(["a", "b"], {"kind": "identity"})
        assert png.startswith(b"\x89PNG")
        with pytest.raises(ValidationError) as err:
            client.similarity_preview(["a", "b"], {"kind": "matrix", "values": [[1.0]]})
        assert err.value.field.startswith("similarity")


def test_datasets_pages_get_delete_and_upload_progress(live, tmp_path):
    url, svc = live
    sent: list[tuple[int, int]] = []
    with SimtrainClient(url, svc.key_a) as client:
        first = _npz(tmp_path / "a.npz", 12)
        a = client.upload_dataset(first, name="a", progress=lambda done, total: sent.append((done, total)))
        assert sent and sent[-1] == (first.stat().st_size, first.stat().st_size)
        b = client.upload_dataset(_npz(tmp_path / "b.npz", 14, offset=100), name="b")
        assert client.upload_dataset(first)["id"] == a["id"]  # the same bytes: the dataset stored before
        page = client.datasets_page(limit=1)
        assert [d["id"] for d in page["items"]] == [b["id"]] and page["next_cursor"]
        assert [d["id"] for d in client.list_datasets()] == [b["id"], a["id"]]
        assert client.get_dataset(a["id"])["num_samples"] == 12
        client.delete_dataset(a["id"])
        with pytest.raises(NotFoundError):
            client.get_dataset(a["id"])
        assert client.health() == {"status": "ok", "checks": {}}
        assert client.ready()["status"] == "ok"
