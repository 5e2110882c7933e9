"""``computekit.webhooks.verify_replicate``: Replicate's signed webhooks (the Standard Webhooks scheme).

Signatures are built here from the documented scheme (https://replicate.com/docs/topics/webhooks/verify-webhook):
base64(HMAC-SHA256(base64decode(secret without "whsec_"), "{webhook-id}.{webhook-timestamp}.{body}")), sent as
space-separated ``v1,<signature>`` entries in ``webhook-signature``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import subprocess
import sys

import pytest

import computekit as ck
from computekit.webhooks import verify_replicate

KEY = b"computekit-test-webhook-signing-key-0123"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"some-other-account-signing-key-99999").decode()
NOW = 1_795_581_600
MSG_ID = "msg_2kLd3eZ5Rb5tQm0xYq9w"
BODY = b'{"id":"p0k3m4ne2srj20cj9x1a","status":"succeeded","output":["https://replicate.delivery/out.png"]}'


def sign(key: bytes, msg_id: str, stamp: int | str, body: bytes) -> str:
    digest = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def headers(signature: str | None = None, *, stamp: int = NOW, msg_id: str = MSG_ID) -> dict[str, str]:
    sig = signature if signature is not None else "v1," + sign(KEY, msg_id, stamp, BODY)
    return {"webhook-id": msg_id, "webhook-timestamp": str(stamp), "webhook-signature": sig}


def test_valid_signature_passes() -> None:
    assert verify_replicate(headers(), BODY, SECRET, now=NOW) is None


def test_header_names_are_case_insensitive_and_str_body_accepted() -> None:
    mixed = {k.title(): v for k, v in headers().items()}
    verify_replicate(mixed, BODY.decode(), SECRET, now=NOW + 10)


def test_wrong_secret_fails() -> None:
    with pytest.raises(ck.WebhookVerificationError, match="no webhook-signature entry matches"):
        verify_replicate(headers(), BODY, OTHER_SECRET, now=NOW)


def test_tampered_body_fails() -> None:
    with pytest.raises(ck.WebhookVerificationError):
        verify_replicate(headers(), BODY.replace(b"succeeded", b"failed"), SECRET, now=NOW)


def test_tampered_id_fails() -> None:
    h = headers()
    h["webhook-id"] = "msg_other"
    with pytest.raises(ck.WebhookVerificationError):
        verify_replicate(h, BODY, SECRET, now=NOW)


@pytest.mark.parametrize("skew", [301, -301, 3600])
def test_stale_or_future_timestamp_fails(skew: int) -> None:
    stamp = NOW - skew
    with pytest.raises(ck.WebhookVerificationError, match="replay"):
        verify_replicate(headers(stamp=stamp), BODY, SECRET, now=NOW)


def test_tolerance_is_inclusive_and_configurable() -> None:
    verify_replicate(headers(stamp=NOW - 300), BODY, SECRET, now=NOW)
    verify_replicate(headers(stamp=NOW - 3000), BODY, SECRET, now=NOW, tolerance_s=3600)
    with pytest.raises(ck.WebhookVerificationError):
        verify_replicate(headers(stamp=NOW - 11), BODY, SECRET, now=NOW, tolerance_s=10)


def test_default_clock_is_used_when_now_is_not_given() -> None:
    import time

    stamp = int(time.time())
    verify_replicate(headers(stamp=stamp), BODY, SECRET)
    with pytest.raises(ck.WebhookVerificationError):
        verify_replicate(headers(stamp=NOW), BODY, SECRET)  # NOW is long past


def test_multiple_signatures_one_valid_passes() -> None:
    good = sign(KEY, MSG_ID, NOW, BODY)
    bad = base64.b64encode(b"x" * 32).decode()
    for sig in (f"v1,{bad} v1,{good}", f"v1,{good} v1,{bad}", f"v1a,{good[::-1]} v1,{bad}  v1,{good}"):
        verify_replicate(headers(sig), BODY, SECRET, now=NOW)


def test_multiple_signatures_none_valid_fails() -> None:
    bad = base64.b64encode(b"x" * 32).decode()
    good_other_version = "v2," + sign(KEY, MSG_ID, NOW, BODY)
    with pytest.raises(ck.WebhookVerificationError):
        verify_replicate(headers(f"v1,{bad} {good_other_version} garbage"), BODY, SECRET, now=NOW)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_fails_and_names_it(missing: str) -> None:
    h = headers()
    del h[missing]
    with pytest.raises(ck.WebhookVerificationError, match=missing):
        verify_replicate(h, BODY, SECRET, now=NOW)


def test_malformed_timestamp_fails() -> None:
    h = headers()
    h["webhook-timestamp"] = "yesterday"
    with pytest.raises(ck.WebhookVerificationError, match="Unix seconds"):
        verify_replicate(h, BODY, SECRET, now=NOW)


def test_malformed_secret_fails_without_echoing_it() -> None:
    with pytest.raises(ck.WebhookVerificationError, match="whsec_") as info:
        verify_replicate(headers(), BODY, "whsec_not base64!!", now=NOW)
    assert "not base64!!" not in str(info.value)


def test_secret_without_prefix_is_accepted() -> None:
    verify_replicate(headers(), BODY, base64.b64encode(KEY).decode(), now=NOW)


def test_error_is_a_computekit_error_not_a_provider_error() -> None:
    assert issubclass(ck.WebhookVerificationError, ck.ComputeKitError)
    assert not issubclass(ck.WebhookVerificationError, ck.ProviderError)


def test_import_computekit_does_not_import_webhooks() -> None:
    code = "import sys, computekit\nprint('computekit.webhooks' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    import computekit.webhooks

    assert computekit.webhooks.verify_replicate is verify_replicate
