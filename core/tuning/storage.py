"""Optuna's RDB storage on the project's own database, and the Optuna objects of one study.

    storage = optuna_storage(settings.database_url)     # one per process and URL (PostgreSQL or SQLite)
    study = load_study(storage, row.id, row.spec)        # sampler and pruner as the request asked
    trial = live_trial(study, storage, number)           # an `optuna.trial.Trial` to report / tell
    study.ask(distributions(row.spec["search_space"]))   # a new trial over the request's search space

Optuna keeps its studies in its own tables (`OPTUNA_TABLES`), created by the storage on first use next
to simtrain's. Both use Alembic's `alembic_version` table: simtrain's migrations own it, so the storage is
opened without Optuna's schema check (`skip_compatibility_check`) and only on a migrated database (one
whose `alembic_version` has simtrain's revision: Optuna would otherwise write its own revision there).

Samplers are rebuilt at every driver step (another process, another time): TPE (`constant_liar`, for
trials in flight) or random, seeded with the study's seed plus the number of trials so far, so the
sequence is reproducible and a fresh sampler does not repeat the last one's draws. Pruners: Optuna's
MedianPruner, SuccessiveHalvingPruner (ASHA) or NopPruner.
"""

from __future__ import annotations

import logging
import time
from functools import lru_cache
from typing import Any

__all__ = [
    "OPTUNA_TABLES",
    "distributions",
    "live_trial",
    "load_study",
    "make_pruner",
    "make_sampler",
    "optuna_storage",
]

log = logging.getLogger("simtrain.tuning")

OPTUNA_TABLES = frozenset(
    {
        "studies", "study_directions", "study_system_attributes", "study_user_attributes",
        "trial_heartbeats", "trial_intermediate_values", "trial_params", "trial_system_attributes",
        "trial_user_attributes", "trial_values", "trials", "version_info",
    }
)  # fmt: skip
"""The tables Optuna's RDB storage creates (`tests/tuning` checks them against Optuna's own models)."""


def _engine_args(url: str) -> tuple[str, dict[str, Any]]:
    if url.startswith("sqlite"):
        return url, {"connect_args": {"timeout": 30}}
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url, {"pool_pre_ping": True, "pool_size": 4, "connect_args": {"connect_timeout": 5}}


def _check_migrated(url: str, kwargs: dict[str, Any]) -> None:
    import sqlalchemy as sa
    from alembic.migration import MigrationContext

    from core.errors import ServiceUnavailable

    engine = sa.create_engine(url, **kwargs)
    try:
        with engine.connect() as conn:
            revision = MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
    if revision is None:
        raise ServiceUnavailable("the database has no schema yet: run `simtrain migrate` first")


@lru_cache(maxsize=4)
def optuna_storage(database_url: str) -> Any:
    """`optuna.storages.RDBStorage` on `database_url`; creates Optuna's tables when they are missing
    (two processes racing to create them: the loser tries again and finds them)."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url, kwargs = _engine_args(database_url)
    _check_migrated(url, kwargs)
    for attempt in range(3):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, skip_compatibility_check=True)
        except SQLAlchemyError as exc:
            if attempt == 2:
                raise
            log.warning("opening Optuna's storage failed (%s); trying again", str(exc).splitlines()[0][:200])
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def make_sampler(spec: dict[str, Any], trials_so_far: int) -> Any:
    """The study's sampler for a step that finds `trials_so_far` trials (see the module docstring)."""
    import optuna

    seed = (int(spec["seed"]) + trials_so_far) % (2**31 - 1)
    if spec["sampler"] == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def make_pruner(spec: dict[str, Any]) -> Any:
    """MedianPruner (pruning starts once a quarter of the trials, at most 5, have completed), ASHA with a
    minimum of one epoch and a reduction factor of 3, or none."""
    import optuna

    kind = spec["pruner"]
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=min(5, max(1, int(spec["trials"]) // 4)))
    if kind == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def load_study(storage: Any, name: str, spec: dict[str, Any], *, trials_so_far: int = 0) -> Any:
    """The study `name` (created, with the request's direction, when it does not exist yet)."""
    import optuna

    return optuna.create_study(
        storage=storage,
        study_name=name,
        direction=spec["objective"]["direction"],
        sampler=make_sampler(spec, trials_so_far),
        pruner=make_pruner(spec),
        load_if_exists=True,
    )


def live_trial(study: Any, storage: Any, number: int) -> Any:
    """`optuna.trial.Trial` number `number` of `study` (to report to, set constraints on, tell)."""
    import optuna

    study_id = storage.get_study_id_from_name(study.study_name)
    return optuna.trial.Trial(study, storage.get_trial_id_from_study_id_trial_number(study_id, number))


def distributions(space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Optuna's distribution of every searched path (`core.tuning.spec` params, as stored JSON)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for path, p in space.items():
        if p["type"] == "float":
            out[path] = FloatDistribution(p["low"], p["high"], log=p.get("log", False), step=p.get("step"))
        elif p["type"] == "int":
            out[path] = IntDistribution(p["low"], p["high"], log=p.get("log", False), step=p.get("step", 1))
        else:
            out[path] = CategoricalDistribution(p["choices"])
    return out
