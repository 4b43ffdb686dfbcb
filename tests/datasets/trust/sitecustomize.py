"""Test-only: a process started with this folder on its PYTHONPATH and `SIMTRAIN_TEST_CA_BUNDLE` set trusts
the CA bundle that variable names (instead of certifi's, which the bundle includes), so a worker can fetch
from the tests' local HTTPS server (`tests/datasets/refservers.py`) with the certificate checked as usual.
Without the variable it does nothing.
"""

import os

_bundle = os.environ.get("SIMTRAIN_TEST_CA_BUNDLE")
if _bundle:
    import certifi

    certifi.where = lambda: _bundle
