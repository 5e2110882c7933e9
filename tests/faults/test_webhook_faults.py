"""Fault catalogue: hostile webhook deliveries and a missing signing secret (``verify_replicate``: pure, no I/O,
so there is no async twin)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

import computekit as ck
from computekit.webhooks import verify_replicate

KEY = b"computekit-fault-webhook-signing-key-77"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
NOW = 1_795_581_600
BODY = b'{"id":"p0k3","status":"succeeded"}'


def delivery(stamp: str) -> dict[str, str]:
    digest = hmac.new(KEY, f"msg_1.{stamp}.".encode() + BODY, hashlib.sha256).digest()
    return {"webhook-id": "msg_1", "webhook-timestamp": stamp,
            "webhook-signature": "v1," + base64.b64encode(digest).decode()}


@pytest.mark.parametrize("stamp", ["9" * 400, "9" * 4000, "1" + "0" * 20, "1_795_581_600", "+1795581600",
                                   "1795581600.5", "-1795581600", "١٧٩٥٥٨١٦٠٠"],
                         ids=["400-digits", "4000-digits", "21-digits", "underscores", "plus-sign", "fraction",
                              "negative", "arabic-indic-digits"])
def test_webhook_timestamp_that_is_not_unix_seconds_is_refused(stamp: str) -> None:
    """A signed delivery whose timestamp is absurdly long or not plain digits is a WebhookVerificationError (a
    400 for the app), never an OverflowError: even when its signature over that timestamp is valid."""
    with pytest.raises(ck.WebhookVerificationError, match="Unix seconds"):
        verify_replicate(delivery(stamp), BODY, SECRET, now=NOW)


def test_webhook_timestamp_check_still_accepts_a_fresh_delivery() -> None:
    verify_replicate(delivery(str(NOW)), BODY, SECRET, now=NOW)  # the refusals above are not of everything


def test_webhook_nan_clock_refuses_instead_of_passing() -> None:
    with pytest.raises(ck.WebhookVerificationError, match="possible replay"):
        verify_replicate(delivery(str(NOW)), BODY, SECRET, now=float("nan"))


@pytest.mark.parametrize("secret", [None, b"whsec_abc", 42], ids=["None", "bytes", "int"])
def test_webhook_secret_that_is_not_a_str_is_a_clear_type_error(secret: object) -> None:
    """``os.environ.get("REPLICATE_WEBHOOK_SECRET")`` unset: a TypeError that says what is missing, not an
    AttributeError from inside the function (and not a WebhookVerificationError: the delivery is not at fault)."""
    with pytest.raises(TypeError, match="signing secret as a str") as info:
        verify_replicate(delivery(str(NOW)), BODY, secret, now=NOW)  # type: ignore[arg-type]
    assert not isinstance(info.value, ck.WebhookVerificationError)
