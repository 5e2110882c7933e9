"""Verify the webhooks a host sends when a prediction ends. Pure functions: no HTTP, no client, no framework.

::

    from computekit.webhooks import verify_replicate
    from computekit import WebhookVerificationError

    try:
        verify_replicate(request.headers, raw_body, os.environ["REPLICATE_WEBHOOK_SECRET"])
    except WebhookVerificationError:
        return Response(status_code=400)

Replicate signs each delivery (the Standard Webhooks scheme): the HMAC-SHA256 of
``{webhook-id}.{webhook-timestamp}.{raw body}``, keyed with the base64-decoded part of the ``whsec_...`` signing
secret (``GET /v1/webhooks/default/secret``), sent base64-encoded in ``webhook-signature`` as space-separated
``v1,<signature>`` entries. See https://replicate.com/docs/topics/webhooks/verify-webhook.

``import computekit`` does not import this module.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Mapping

from ._constants import WEBHOOK_TOLERANCE_S
from ._exceptions import WebhookVerificationError

__all__ = ["WebhookVerificationError", "verify_replicate"]

_SECRET_PREFIX = "whsec_"  # noqa: S105  (the prefix of the format, not a secret)
_SIGNATURE_VERSION = "v1"
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
"""Unix seconds: up to 12 digits (the year 33658), ample for any real delivery and safe to compare as a float."""


def verify_replicate(
    headers: Mapping[str, str],
    body: bytes | str,
    secret: str,
    *,
    tolerance_s: float = WEBHOOK_TOLERANCE_S,
    now: float | None = None,
) -> None:
    """Check that a webhook came from Replicate, unchanged and recently; return quietly when it did.

    Args:
        headers: The request's headers (any mapping; names are matched case-insensitively).
        body: The raw request body, exactly as received (not re-serialised JSON: any change breaks the
            signature).
        secret: The account's webhook signing secret, ``whsec_...``.
        tolerance_s: How far (seconds) ``webhook-timestamp`` may be from ``now``: an older delivery is refused
            as a possible replay.
        now: The current Unix time (default: the system clock); tests pass one.

    Raises:
        TypeError: ``secret`` is not a string (``None``: the environment variable that should hold it is not
            set). A configuration mistake, not a bad delivery: it is not answered with a 400.
        WebhookVerificationError: A header is missing or malformed, the timestamp is outside the tolerance, no
            signature matches, or ``secret`` is not a ``whsec_`` base64 secret. The message never holds the
            secret.
    """
    if not isinstance(secret, str):
        raise TypeError(
            f"verify_replicate() needs the webhook signing secret as a str ('whsec_...'), got "
            f"{type(secret).__name__}: is the variable that should hold it set?"
        )
    found = {k.lower(): v for k, v in headers.items()}
    missing = [h for h in ("webhook-id", "webhook-timestamp", "webhook-signature") if not found.get(h)]
    if missing:
        raise WebhookVerificationError(f"missing webhook header(s): {', '.join(missing)}")
    msg_id, stamp, signatures = found["webhook-id"], found["webhook-timestamp"].strip(), found["webhook-signature"]

    # Digits only, and not more than a Unix time has: int() alone would take "1_7" or " +17", and a number of
    # thousands of digits does not fit the float the clock is compared in.
    if not _TIMESTAMP.fullmatch(stamp):
        raise WebhookVerificationError(f"webhook-timestamp is not Unix seconds: {stamp[:40]!r}")
    sent_at = int(stamp)
    clock = time.time() if now is None else now
    skew = abs(clock - sent_at)
    if not skew <= tolerance_s:  # NaN (a broken clock or tolerance) is refused too
        raise WebhookVerificationError(
            f"webhook-timestamp is {skew:.0f} s from now (tolerance {tolerance_s} s): refused as a possible replay"
        )

    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    signed = f"{msg_id}.{stamp}.".encode() + raw
    expected = base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest())
    matched = False
    for entry in signatures.split():
        version, sep, value = entry.partition(",")
        if sep and version == _SIGNATURE_VERSION:
            # Every entry is compared (no early exit) in constant time.
            matched |= hmac.compare_digest(value.encode("ascii", "replace"), expected)
    if not matched:
        raise WebhookVerificationError("no webhook-signature entry matches: wrong secret, or the body was changed")


def _key(secret: str) -> bytes:
    """The HMAC key: the base64-decoded part of ``whsec_...``."""
    encoded = secret.strip()
    encoded = encoded.removeprefix(_SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError(
            "the webhook secret is not a Replicate signing secret (whsec_ followed by base64)"
        ) from None
    if not key:
        raise WebhookVerificationError("the webhook secret is empty")
    return key
