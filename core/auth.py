"""API keys: `st_` + 40 random url-safe characters, stored only as a SHA-256 hash.

    key = create_api_key(session, tenant_name="acme")   # shown once
    tenant_id = resolve_api_key(session, key)            # None when unknown or revoked

A query that checks the key itself (the status read joins the key to the job) looks it up by
`lookup_hash(key)`. Revocation applies at once everywhere: keys are never cached.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from core.db.models import ApiKey, Tenant
from core.db.types import now

__all__ = ["KEY_PREFIX", "create_api_key", "hash_key", "lookup_hash", "resolve_api_key", "revoke_api_key"]

KEY_PREFIX = "st_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def create_api_key(s: Session, tenant_name: str, key_name: str = "") -> str:
    tenant = s.execute(select(Tenant).where(Tenant.name == tenant_name)).scalar_one_or_none()
    if tenant is None:
        tenant = Tenant(name=tenant_name)
        s.add(tenant)
        s.flush()
    key = KEY_PREFIX + secrets.token_urlsafe(30)
    s.add(ApiKey(tenant_id=tenant.id, name=key_name, key_hash=hash_key(key)))
    s.commit()
    return key


# Looked up on every request: two columns of one prebuilt statement (no ORM entity, nothing built per
# call); revocation applies at once (no cache).
_KEY_LOOKUP = select(ApiKey.tenant_id, ApiKey.revoked_at).where(ApiKey.key_hash == bindparam("key_hash"))


def lookup_hash(key: str) -> str | None:
    """The hash to look a presented key up by; None for one that cannot be a key (no lookup needed)."""
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    return hash_key(key)


def resolve_api_key(s: Session, key: str) -> str | None:
    key_hash = lookup_hash(key)
    if key_hash is None:
        return None
    row = s.execute(_KEY_LOOKUP, {"key_hash": key_hash}).one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    return row.tenant_id


def revoke_api_key(s: Session, key: str) -> bool:
    row = s.execute(select(ApiKey).where(ApiKey.key_hash == hash_key(key))).scalar_one_or_none()
    if row is None:
        return False
    row.revoked_at = now()
    s.commit()
    return True
