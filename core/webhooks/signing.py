"""Standard Webhooks signing: the secret's form, the signature and the three headers of a delivery.

    secret = new_secret()                      # "whsec_" + base64 of 24 random bytes, shown to the user once
    headers = signature_headers(secret, "msg_2b9...", 1767225600, body)
    # {"webhook-id": "msg_2b9...", "webhook-timestamp": "1767225600", "webhook-signature": "v1,K5oZ..."}

The signature is `v1,` + base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}")) where `key` is the base64
part of the secret decoded (the Standard Webhooks specification, "Signature scheme"); the reference
libraries (`standardwebhooks`, `svix`) verify it with the same `whsec_...` string.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

__all__ = ["SECRET_PREFIX", "new_secret", "secret_key", "sign", "signature_headers"]

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24


def new_secret() -> str:
    """A fresh signing secret: `whsec_` + base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key a `whsec_...` secret stands for (its base64 part, decoded)."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"not a {SECRET_PREFIX}<base64> secret: {exc}") from None
    if not key:
        raise ValueError("empty webhook secret")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of id.timestamp.body>`."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The `webhook-id`, `webhook-timestamp` and `webhook-signature` headers of one attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": sign(secret, msg_id, int(timestamp), body),
    }
