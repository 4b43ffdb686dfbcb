"""The check of `SIMTRAIN_MLFLOW_TRACKING_URI` (`core.settings.Settings.mlflow_tracking_uri`).

    check_tracking_uri(" http://mlflow:5000/ ")   # -> "http://mlflow:5000"
    check_tracking_uri("http://user:pw@mlflow")   # ValueError: credentials go in MLFLOW_TRACKING_USERNAME/...

An MLflow tracking URI: an http(s) server (no credentials in it: they would show in logs and events;
MLflow reads `MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD` / `MLFLOW_TRACKING_TOKEN`), a local
`file:` store, a database MLflow can use directly (`sqlite:`, `postgresql:`, `mysql:`, `mssql:`) or
`databricks`. Empty: tracking is off.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["SCHEMES", "check_tracking_uri"]

SCHEMES = ("http", "https", "file", "sqlite", "postgresql", "mysql", "mssql", "databricks")


def check_tracking_uri(value: str) -> str:
    """`value` stripped (and without a trailing `/` for http(s)), or ValueError saying what is wrong."""
    v = (value or "").strip()
    if not v:
        return ""
    if v == "databricks":
        return v
    try:
        parts = urlsplit(v)
        parts.port  # noqa: B018 - raises ValueError when out of range
    except ValueError as exc:
        raise ValueError(f"not a URI: {exc}") from None
    scheme = parts.scheme.split("+", 1)[0].lower()
    if scheme not in SCHEMES or any(c.isspace() for c in v):
        raise ValueError(f"an MLflow tracking URI with one of the schemes {', '.join(SCHEMES)}")
    if scheme in ("http", "https"):
        if not parts.hostname or "@" in parts.netloc:
            raise ValueError(
                "an http(s)://host[:port][/path] URI without credentials "
                "(those: MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD / MLFLOW_TRACKING_TOKEN)"
            )
        return v.rstrip("/")
    return v
