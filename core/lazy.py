"""Names a package exports from its heavy modules (torch, timm), imported on first use.

    # in core/losses/__init__.py
    __getattr__ = lazy_exports(__name__, {"build": ("build_loss",), "focal": ("FocalLoss",)})

`from core.losses import build_loss` then imports `core.losses.build` at that moment, so that the
package's light modules (the specs: the API's schemas) import without torch. A name no module exports
is an AttributeError, as for any module.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, Iterable[str]]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package`: `exports` maps a submodule's name to the names it exports."""
    module_of = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return __getattr__
