"""Load another test folder's conftest.py under a name of its own, so its fixtures can be shared.

    _api = load_module("_simtrain_x_api_fixtures", TESTS / "api" / "conftest.py")
    service = _api.service   # a fixture, re-exported by the importing conftest
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["load_module"]


def load_module(name: str, path: Path) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
