"""``computekit._urls``: one strict reading of a URL's origin, and whether an address is public."""

from __future__ import annotations

import socket
from typing import Any

import pytest

import computekit as ck
from computekit import _urls

OK = [
    ("https://api.openai.com/v1", ("https", "api.openai.com", 443)),
    ("HTTPS://API.OpenAI.com:443/v1", ("https", "api.openai.com", 443)),
    ("http://127.0.0.1:8080/v1?a=b#c", ("http", "127.0.0.1", 8080)),
    ("http://[::1]:9/x", ("http", "::1", 9)),
    ("https://xn--bcher-kva.example/", ("https", "xn--bcher-kva.example", 443)),
    ("inproc://fake/v1", ("inproc", "fake", None)),
]

AMBIGUOUS = [
    "https://evil\\@api.openai.com/v1",  # urlsplit reads api.openai.com, urllib3 and WHATWG read evil
    "https://api.openai.com\\@evil.test/v1",
    "https://user@api.openai.com/v1",
    "https://user:pw@api.openai.com/v1",
    "https://api.openai.com\t/v1",
    "https://api.openai.com/v1\r\nX-Injected: 1",
    "https://api.openai.com /v1",
    "https://api.openai.com%2Eevil.test/v1",
    "https://bücher.example/",
    "https://ａpi.openai.com/v1",  # a full-width letter: NFKC folds it to "api"
    "https://api.openai.com:99999/v1",
    "https://api.openai.com:x/v1",
    "https:///v1",
]


@pytest.mark.parametrize(("url", "expected"), OK)
def test_the_origin_of_a_plain_url(url: str, expected: tuple[str, str, int | None]) -> None:
    assert _urls.origin(url) == expected
    assert _urls.check_url(url) == url


@pytest.mark.parametrize("url", AMBIGUOUS)
def test_urls_parsers_could_read_differently_are_refused(url: str) -> None:
    with pytest.raises(ck.UnsafeURLError) as info:
        _urls.origin(url)
    assert isinstance(info.value, ck.InvalidRequestError)
    assert "pw" not in str(info.value)
    assert not _urls.is_safe(url)
    assert not _urls.same_origin(url, "https://api.openai.com/v1")


def test_same_origin_is_exact() -> None:
    base = "https://api.openai.com/v1"
    assert _urls.same_origin("https://api.openai.com:443/other", base)
    assert not _urls.same_origin("http://api.openai.com/v1", base)
    assert not _urls.same_origin("https://api.openai.com:8443/v1", base)
    assert not _urls.same_origin("https://api.openai.com.evil.test/v1", base)


def test_messages_never_show_a_query_or_user_info() -> None:
    assert _urls.without_query("https://u:p@cdn.test/a/b.png?X-Amz-Signature=s#f") == "https://cdn.test/a/b.png"
    with pytest.raises(ck.UnsafeURLError) as info:
        _urls.origin("https://u:secret@cdn.test/a.png?sig=topsecret")
    assert "secret" not in str(info.value)


@pytest.mark.parametrize(("ip", "why"), [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("10.1.2.3", "private"), ("192.168.0.1", "private"),
    ("172.16.0.1", "private"), ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("::ffff:127.0.0.1", "loopback"), ("0.0.0.0", "unspecified"), ("224.0.0.1", "multicast"),  # noqa: S104 - an address checked, not bound
    ("100.64.0.1", "non-global"), ("fc00::1", "private"),
])
def test_private_addresses_are_named(ip: str, why: str) -> None:
    assert _urls.refused_address(ip) == why


def test_public_addresses() -> None:
    assert _urls.refused_address("8.8.8.8") is None
    assert _urls.refused_address("2606:4700::1111") is None
    assert _urls.public_addresses("http://8.8.8.8/x") == [(socket.AF_INET, "8.8.8.8")]


def test_every_resolved_address_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443)),
               (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", 443))]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: answers)
    with pytest.raises(ck.UnsafeURLError, match="private"):
        _urls.public_addresses("https://cdn.example/x.png?sig=1")
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: answers[:1])
    assert _urls.public_addresses("https://cdn.example/x.png") == [(socket.AF_INET, "93.184.216.34")]


def test_a_name_that_does_not_resolve_is_left_to_the_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    assert _urls.public_addresses("https://nowhere.invalid/x") == []


def test_adapters_whose_host_is_filled_in_keep_their_key_there_only() -> None:
    from pydantic import SecretStr

    from computekit.adapters import adapter_class
    from computekit.adapters._base import ProviderSettings

    def make(name: str, **extra: object) -> object:
        cls = adapter_class(name)
        options = cls.settings_model(**extra) if extra else None  # type: ignore[attr-defined]
        return cls(ProviderSettings(name=name, base_url=cls.default_base_url or "", api_key=SecretStr("k" * 24),
                                    timeout=30, options=options))

    bedrock: Any = make("bedrock", region="eu-west-3")
    assert bedrock.on_origin(bedrock.model_url("amazon.nova-micro-v1:0", "converse"))
    assert not bedrock.on_origin("https://bedrock-runtime.evil.test/model/x/converse")
    baseten: Any = make("baseten-dedicated")
    assert baseten.on_origin(baseten.predict_url("abc123"))
    assert not baseten.on_origin("https://model-abc.evil.test/predict")
    hf: Any = make("hf-endpoint")
    assert hf.on_origin("https://xyz.us-east-1.aws.endpoints.huggingface.cloud/")
    assert not hf.on_origin("http://xyz.us-east-1.aws.endpoints.huggingface.cloud/")
    assert not hf.on_origin("https://endpoints.huggingface.cloud.evil.test/")
