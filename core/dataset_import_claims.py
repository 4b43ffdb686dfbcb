"""Who imports a dataset given by URI, and when it was last sent: the claim of an `importing` row.

While a `datasets` row is `importing`, its `storage_key` holds the import's state instead of a key (the
key, `core.dataset_store.storage_key_for`, is written when the row becomes `ready` or `failed`):

- `import:sent:<ms>`: the import task was sent at that time (Unix milliseconds) and nobody holds it;
- `import:claim:<owner>:<ms>`: `owner` imports it, its claim live until that time (renewed by `Lease`).

Every change is a conditional UPDATE on the value seen, so two deliveries of the task never both import
(`claim`), the claim that expired is the only one the reconciler re-sends (`stale_imports`,
`take_send_token`) and only the live claimant marks the row (`claimed_by`).

    owner = claim(session, dataset_id, lease_seconds=60)        # None: not importing, or claimed
    with Lease(session_factory, dataset_id, owner, lease_seconds=60):
        ...                                                     # the claim is renewed meanwhile
    session.execute(update(Dataset).where(Dataset.id == dataset_id, claimed_by(owner)).values(...))
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Self

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from core.db.models import Dataset, DatasetStatus
from core.db.types import now as utcnow

__all__ = ["Lease", "claim", "claimed_by", "sent_token", "stale_imports", "take_send_token"]

log = logging.getLogger("simtrain.datasets.import")

_SENT = "import:sent:"
_CLAIM = "import:claim:"
_IMPORTING = DatasetStatus.importing.value


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def sent_token(when: datetime | None = None) -> str:
    """The state of an import task sent at `when` (default: now) that nobody holds yet."""
    return f"{_SENT}{_ms(when or utcnow())}"


def _claim_token(owner: str, until: datetime) -> str:
    return f"{_CLAIM}{owner}:{_ms(until)}"


def claimed_by(owner: str) -> ColumnElement[bool]:
    """The condition "`owner` still holds the claim" (whatever its renewed expiry)."""
    return Dataset.storage_key.startswith(f"{_CLAIM}{owner}:", autoescape=True)


def _expiry_ms(token: str) -> tuple[str, int] | None:
    """("sent" | "claim", milliseconds) of a state token; None for anything else."""
    kind = "sent" if token.startswith(_SENT) else "claim" if token.startswith(_CLAIM) else None
    if kind is None:
        return None
    tail = token.rsplit(":", 1)[-1]
    return (kind, int(tail)) if tail.isdigit() else None


def _is_live(token: str, t: datetime) -> bool:
    state = _expiry_ms(token)
    return state is not None and state[0] == "claim" and state[1] > _ms(t)


def claim(
    session: Session, dataset_id: str, *, lease_seconds: float, now: datetime | None = None
) -> str | None:
    """Take the import of an `importing` row: the owner's id, or None when the row is not importing or
    someone holds a live claim. Commits."""
    t = now or utcnow()
    seen = session.execute(
        select(Dataset.storage_key).where(Dataset.id == dataset_id, Dataset.status == _IMPORTING)
    ).scalar_one_or_none()
    if seen is None or _is_live(seen, t):
        session.commit()
        return None
    owner = uuid.uuid4().hex
    token = _claim_token(owner, t + timedelta(seconds=lease_seconds))
    done = session.execute(
        update(Dataset)
        .where(Dataset.id == dataset_id, Dataset.status == _IMPORTING, Dataset.storage_key == seen)
        .values(storage_key=token)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return owner if done.rowcount == 1 else None


def stale_imports(
    session: Session, *, requeue_after_seconds: float, now: datetime | None = None
) -> list[tuple[str, str]]:
    """(id, state) of the importing rows whose task may be lost: sent longer than `requeue_after_seconds`
    ago and never claimed, or claimed by an owner whose claim expired."""
    t = now or utcnow()
    cutoff = _ms(t - timedelta(seconds=requeue_after_seconds))
    rows = session.execute(select(Dataset.id, Dataset.storage_key).where(Dataset.status == _IMPORTING)).all()
    stale = []
    for dataset_id, token in rows:
        state = _expiry_ms(token)
        if (
            state is None
            or (state[0] == "sent" and state[1] < cutoff)
            or (state[0] == "claim" and state[1] < _ms(t))
        ):
            stale.append((dataset_id, token))
    return stale


def take_send_token(session: Session, dataset_id: str, seen: str, now: datetime | None = None) -> bool:
    """Mark the import as sent now if its state is still `seen` (one reconciler sends it). Commits."""
    done = session.execute(
        update(Dataset)
        .where(Dataset.id == dataset_id, Dataset.status == _IMPORTING, Dataset.storage_key == seen)
        .values(storage_key=sent_token(now))
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return done.rowcount == 1


class Lease:
    """Renews `owner`'s claim every third of `lease_seconds` in a daemon thread, until the block ends."""

    def __init__(
        self, session_factory: Callable[[], Session], dataset_id: str, owner: str, *, lease_seconds: float
    ) -> None:
        self.session_factory, self.dataset_id, self.owner = session_factory, dataset_id, owner
        self.lease_seconds = lease_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"import-lease-{dataset_id[:8]}", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.lease_seconds)

    def _run(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            try:
                with self.session_factory() as session:
                    until = utcnow() + timedelta(seconds=self.lease_seconds)
                    session.execute(
                        update(Dataset)
                        .where(Dataset.id == self.dataset_id, claimed_by(self.owner))
                        .values(storage_key=_claim_token(self.owner, until))
                        .execution_options(synchronize_session=False)
                    )
                    session.commit()
            except Exception as exc:  # noqa: BLE001 - the database is away: the claim may lapse
                log.warning("dataset %s: claim not renewed (%s)", self.dataset_id, str(exc)[:200])
