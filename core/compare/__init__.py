"""Comparisons: train one job spec with several losses over several seeds and compare each loss to the
cross-entropy baseline with paired statistics.

- `core.compare.spec`: `ComparisonCreate` (the request), `child_jobs` (one `JobCreate` per variant and seed).
- `core.compare.stats`: mean +- std over seeds, the paired bootstrap over validation samples (numpy).
- `core.compare.report`: the report built from the children's stored metrics, epochs and predictions.
- `core.compare.service`: create, status, finalise and cancel comparisons (the database side).

The REST routes are `api/routes/comparisons.py`; submodules are imported where used (this package
imports nothing heavy on its own).
"""
