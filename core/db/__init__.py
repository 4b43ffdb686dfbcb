"""Database layer: SQLAlchemy 2 models, engine/session factory and the job state machine.

    from core.db import make_engine, make_sessionmaker
    engine = make_engine(settings.database_url)
"""

from core.db.models import (
    ApiKey,
    Base,
    Comparison,
    Dataset,
    Job,
    JobArtifact,
    JobEpoch,
    JobEvent,
    JobStatus,
    Tenant,
)
from core.db.session import make_engine, make_sessionmaker, session_scope

__all__ = [
    "ApiKey",
    "Base",
    "Comparison",
    "Dataset",
    "Job",
    "JobArtifact",
    "JobEpoch",
    "JobEvent",
    "JobStatus",
    "Tenant",
    "make_engine",
    "make_sessionmaker",
    "session_scope",
]
