"""The data of a study's report page (`GET /v1/tuning/{id}/report`), all from Optuna's own functions on
the stored study, drawn offline: the optimisation history and the intermediate values
(`optuna.visualization.matplotlib`), the parameter importances (`optuna.importance.get_param_importances`
and its plot), each plot a PNG `data:` URI, and the trials table.

    data = study_report(row, settings.database_url)
    data["figures"]["history"]       # "data:image/png;base64,..." or None
    data["importances"]              # [{"param": "training.learning_rate", "importance": 0.8}, ...]
    data["importance_note"]          # why there are none yet, or None

Optuna's matplotlib plots use pyplot's global state: they are drawn one at a time (a lock), on Agg.
"""

from __future__ import annotations

import base64
import io
import threading
import warnings
from typing import Any

from core.db.models import TuningStudy
from core.tuning.storage import load_study, optuna_storage
from core.tuning.table import best_trial, progress, trial_rows

__all__ = ["study_report"]

_PLOT_LOCK = threading.Lock()


def _png_uri(ax: Any) -> str:
    import matplotlib.pyplot as plt

    fig = ax.figure
    fig.set_size_inches(7.5, 3.8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _plot(draw: Any, study: Any, **kwargs: Any) -> str | None:
    """One Optuna plot as a PNG data URI; None when Optuna cannot draw it yet (too few trials)."""
    import matplotlib

    matplotlib.use("Agg")
    with _PLOT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        try:
            return _png_uri(draw(study, **kwargs))
        except (ValueError, RuntimeError, ZeroDivisionError):
            return None


def _importances(study: Any) -> tuple[list[dict[str, Any]], str | None]:
    import optuna

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError) as exc:
        return [], f"no parameter importances yet: {exc}"
    return [{"param": k, "importance": float(v)} for k, v in found.items()], None


def study_report(row: TuningStudy, database_url: str) -> dict[str, Any]:
    """The report data of `row`'s study (see the module docstring)."""
    from optuna.visualization import matplotlib as vis

    spec = row.spec
    study = load_study(optuna_storage(database_url), row.id, spec)
    rows = trial_rows(study.get_trials(deepcopy=False))
    importances, note = _importances(study)
    metric = spec["objective"]["metric"]
    figures = {
        "history": _plot(vis.plot_optimization_history, study, target_name=metric),
        "intermediate": _plot(vis.plot_intermediate_values, study),
        "importances": _plot(vis.plot_param_importances, study) if importances else None,
    }
    return {
        "trials": rows,
        "best_trial": best_trial(study),
        "progress": progress(rows, int(spec["trials"])),
        "importances": importances,
        "importance_note": note,
        "figures": figures,
    }
