"""Hyperparameter tuning: an Optuna study whose trials are ordinary simtrain jobs on the queue.

- `spec`: the request (`TuningCreate`: a job spec, `search_space` over dotted job paths, `objective`,
  `trials`, `parallel`, `sampler`, `pruner`, `seed`); `validate`: its checks against the dataset;
  `paths`: dotted paths into a job document.
- `service`: create, read, cancel (what the REST routes call); `status`: `TuningStatus`, `TrialState`.
- `driver`: one step of a study (the `simtrain.tuning_step` task): tell Optuna how ended trials went, ask
  for new ones, record the table; `trials`: one trial as a job; `table`: the trials table and best trial.
- `storage`: Optuna's RDB storage on the project's database, samplers and pruners;
  `pruning`: each epoch's validation objective reported to the trial, Optuna's pruner asked (the worker's
  hook); `objective`: where a job's objective value comes from; `triggers`: what sends a step (a trial
  job's end, the reconciler); `report`: the report page's data (Optuna's own plots and importances).

Optuna does every search decision (TPE or random sampling, median or ASHA pruning, the best trial,
parameter importances); simtrain only runs its trials as jobs. Importing this package imports neither
Optuna nor torch: its modules import them when they need them.
"""

from core.tuning.status import TUNING_ACTIVE, TUNING_TERMINAL, TrialState, TuningStatus

__all__ = ["TUNING_ACTIVE", "TUNING_TERMINAL", "TrialState", "TuningStatus"]
