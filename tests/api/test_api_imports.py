"""The API process stays light: importing the app (`api.main`) loads no torch. Torch (~450 MB resident) is
imported by the first request that needs it (validating a job spec, a similarity preview, a prediction,
a checkpoint's weights), never by the import or by `/healthz`. Each check runs in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Prints the chain of modules that imported torch first, so a failure says which import to defer.
_FIRST_TORCH_IMPORT = """
import builtins, sys, traceback
real = builtins.__import__
def hook(name, *args, **kwargs):
    if name.split(".")[0] == "torch" and "torch" not in sys.modules:
        chain = [f"{f.filename}:{f.lineno}" for f in traceback.extract_stack()[:-1] if "{repo}" in f.filename]
        print("torch imported by:", " <- ".join(reversed(chain)))
    return real(name, *args, **kwargs)
builtins.__import__ = hook
"""


def _run(code: str) -> subprocess.CompletedProcess:
    script = _FIRST_TORCH_IMPORT.replace("{repo}", str(REPO)) + code
    return subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120, cwd=REPO
    )


def test_importing_the_app_does_not_import_torch():
    done = _run("import api.main, sys; assert 'torch' not in sys.modules, 'torch was imported'")
    assert done.returncode == 0, done.stdout + done.stderr


def test_building_the_app_and_answering_healthz_does_not_import_torch(tmp_path):
    code = f"""
import sys
from fastapi.testclient import TestClient
from api.main import create_app
from core.settings import Settings
from migrations import upgrade_head
settings = Settings(home={str(tmp_path)!r})
settings.ensure_home()
upgrade_head(settings.database_url)
with TestClient(create_app(settings)) as client:
    assert client.get("/healthz").status_code == 200
    assert client.get("/openapi.json").status_code == 200
assert "torch" not in sys.modules, "torch was imported"
"""
    done = _run(code)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_specs_still_reach_the_torch_code_by_their_old_names():
    code = """
import sys
from core.losses import LossSpec, parse_loss_spec
from core.models import ModelSpec
from core.similarity import SimilaritySpec
from core.jobspec import JobCreate
assert "torch" not in sys.modules, "a spec import loaded torch"
from core.losses import build_loss, SimLoss
from core.models import build_model
from core.similarity import build_similarity
loss = build_loss({"kind": "simloss"}, build_similarity({"kind": "ordinal"}, ["a", "b"]), ["a", "b"])
assert isinstance(loss, SimLoss) and "torch" in sys.modules
try:
    from core.losses import no_such_name
except ImportError:
    pass
else:
    raise AssertionError("an unknown name was importable")
"""
    done = _run(code)
    assert done.returncode == 0, done.stdout + done.stderr


def test_with_api_preload_torch_is_imported_after_start_up_and_a_first_submission_imports_nothing_heavy(
    tmp_path,
):
    code = f"""
import sys
from fastapi.testclient import TestClient
from api.main import create_app
from core.auth import create_api_key
from core.db import make_sessionmaker
from core.settings import Settings
from migrations import upgrade_head
settings = Settings(home={str(tmp_path)!r}, api_preload=True)
settings.ensure_home()
upgrade_head(settings.database_url)
app = create_app(settings)
assert "torch" not in sys.modules, "torch was imported before start-up"
with make_sessionmaker(app.state.engine)() as s:
    key = create_api_key(s, "t")
with TestClient(app) as client:
    app.state.preload.join(120)
    assert not app.state.preload.is_alive(), "the preload did not end"
    loaded = set(sys.modules)
    assert {{"torch", "timm", "celery", "core.losses.build"}} <= loaded, "not preloaded"
    body = {{"dataset": "builtin:digits", "model": {{"kind": "timm", "architecture": "resnet18"}},
            "loss": {{"kind": "simloss"}}, "similarity": {{"kind": "ordinal"}}, "training": {{"epochs": 1}}}}
    r = client.post("/v1/jobs", json=body, headers={{"Authorization": f"Bearer {{key}}"}})
    assert r.status_code == 201, r.text
    heavy = sorted(m for m in set(sys.modules) - loaded
                   if m.split(".")[0] in ("torch", "timm", "celery", "kombu") or m.startswith("core.losses"))
    assert not heavy, f"the first submission still imported {{heavy[:10]}}"
"""
    done = _run(code)
    assert done.returncode == 0, done.stdout + done.stderr
