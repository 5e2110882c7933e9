"""``Prediction.save()`` / ``async_save()``: output files fetched through the client, without the provider's key.

A mock Replicate (``httpx.MockTransport``) creates a prediction that has already succeeded with the output under
test, and a mock CDN answers GETs from ``FILES``. Every request is kept, so a test can check what was sent where.
"""

from __future__ import annotations

import base64
import inspect
from pathlib import Path
from typing import Any

import httpx
import pytest
from _support import make_client

import computekit as ck
from computekit import _constants
from computekit._exceptions import InvalidRequestError, MalformedResponseError, NotFoundError
from computekit._outputs import Sink, file_names, file_urls
from computekit.adapters._base import HTTPResponse

TOKEN = "r8_save0123456789abcdefghijklmn"
MODEL = "replicate:acme/painter"
CDN = "https://replicate.delivery/xezq/f00d"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
WEBP = b"RIFF\x10\x00\x00\x00WEBPVP8 "

both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])


class Host:
    """Replicate plus a CDN: POST creates a succeeded prediction with ``output``; GET serves ``files``."""

    def __init__(self, output: Any, files: dict[str, httpx.Response | bytes] | None = None) -> None:
        self.output = output
        self.files = files or {}
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if request.method == "POST":
            return httpx.Response(201, json={
                "id": "p5ave", "model": "acme/painter", "version": "v1", "status": "succeeded",
                "input": {}, "output": self.output, "logs": "", "error": None,
                "metrics": {"predict_time": 1.5}, "urls": {"get": "https://api.replicate.com/v1/predictions/p5ave"},
            })
        url = str(request.url.copy_with(query=None))
        reply = self.files.get(url)
        if reply is None:
            return httpx.Response(404, json={"detail": "not found"})
        return reply if isinstance(reply, httpx.Response) else httpx.Response(200, content=reply)

    @property
    def downloads(self) -> list[httpx.Request]:
        return [r for r in self.seen if r.method == "GET"]


def client(host: Host, is_async: bool) -> Any:
    return make_client(host, is_async=is_async, providers={"replicate": {"api_key": TOKEN}})


async def predict(host: Host, is_async: bool) -> ck.Prediction:
    c = client(host, is_async)
    p = c.predict(MODEL, {"prompt": "a red bicycle"}, validate=False)  # the saving is under test
    return await p if inspect.isawaitable(p) else p  # type: ignore[no-any-return]


async def save(p: ck.Prediction, directory: Path, is_async: bool) -> list[Path]:
    return await p.async_save(directory) if is_async else p.save(directory)


# ------------------------------------------------------------------------------------------------ saving


@both
async def test_saves_a_url_output_without_the_provider_key(tmp_path: Path, is_async: bool) -> None:
    url = f"{CDN}/out-0.png?X-Amz-Signature=abc123"
    host = Host(url, {f"{CDN}/out-0.png": PNG})
    p = await predict(host, is_async)
    out = tmp_path / "new" / "dir"

    paths = await save(p, out, is_async)

    assert paths == [out / "out-0.png"]
    assert paths[0].read_bytes() == PNG
    create, download = host.seen
    assert create.headers["authorization"] == f"Bearer {TOKEN}"  # the key went to the API ...
    assert str(download.url) == url  # ... the pre-signed URL was fetched as it was ...
    assert "authorization" not in download.headers  # ... and without the key
    assert not any(TOKEN in v for v in download.headers.values())


@both
async def test_saves_urls_in_lists_and_dicts_in_order(tmp_path: Path, is_async: bool) -> None:
    output = {
        "caption": "a red bicycle",  # text, not a file
        "images": [f"{CDN}/a.png", f"{CDN}/b.webp"],
        "meta": {"mask": f"{CDN}/m/mask.png", "seed": 42},
        "ftp": "ftp://example.com/x.bin",  # not http(s): ignored
    }
    host = Host(output, {f"{CDN}/a.png": PNG, f"{CDN}/b.webp": WEBP, f"{CDN}/m/mask.png": b"mask"})
    p = await predict(host, is_async)

    paths = await save(p, tmp_path, is_async)

    assert [x.name for x in paths] == ["a.png", "b.webp", "mask.png"]
    assert [x.read_bytes() for x in paths] == [PNG, WEBP, b"mask"]
    assert all("authorization" not in r.headers for r in host.downloads)


@both
async def test_repeated_names_get_a_numeric_suffix(tmp_path: Path, is_async: bool) -> None:
    urls = [f"{CDN}/1/out.png", f"{CDN}/2/out.png", f"{CDN}/3/OUT.png", f"{CDN}/4/"]
    host = Host(urls, {u: u.encode() for u in urls})
    p = await predict(host, is_async)

    paths = await save(p, tmp_path, is_async)

    assert [x.name for x in paths] == ["out.png", "out-1.png", "OUT-2.png", "output"]
    assert [x.read_bytes() for x in paths] == [u.encode() for u in urls]


@both
@pytest.mark.parametrize("bad", ["..%2F..%2Fevil.sh", "%2E%2E", "a%5Cb.png", "..%5Cevil", "c%3A.png"])
async def test_path_traversal_is_refused_before_anything_is_downloaded(tmp_path: Path, is_async: bool,
                                                                       bad: str) -> None:
    host = Host([f"{CDN}/ok.png", f"{CDN}/x/{bad}"], {f"{CDN}/ok.png": PNG})
    p = await predict(host, is_async)
    out = tmp_path / "out"

    with pytest.raises(MalformedResponseError, match="outside the directory"):
        await save(p, out, is_async)
    assert host.downloads == []
    assert not out.exists() or list(out.iterdir()) == []
    assert not (tmp_path / "evil.sh").exists()


@both
async def test_data_uris_are_decoded_without_a_request(tmp_path: Path, is_async: bool) -> None:
    output = ["data:image/png;base64," + base64.b64encode(PNG).decode(), "data:text/plain,hello%20world",
              "data:image/png;base64," + base64.b64encode(b"second").decode()]
    host = Host(output)
    p = await predict(host, is_async)

    paths = await save(p, tmp_path, is_async)

    assert [x.name for x in paths] == ["output.png", "output.txt", "output-1.png"]
    assert [x.read_bytes() for x in paths] == [PNG, b"hello world", b"second"]
    assert host.downloads == []


@both
async def test_a_file_over_the_size_limit_is_refused(tmp_path: Path, is_async: bool,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_constants, "MAX_DOWNLOAD_BYTES", 16)
    host = Host([f"{CDN}/small.png", f"{CDN}/big.png?sig=s3cr3t"], {f"{CDN}/small.png": b"x" * 16,
                                                                     f"{CDN}/big.png": b"x" * 17})
    p = await predict(host, is_async)

    with pytest.raises(MalformedResponseError, match="download limit of 16 bytes") as info:
        await save(p, tmp_path, is_async)
    assert "s3cr3t" not in str(info.value)  # a pre-signed URL's query is a credential
    assert (tmp_path / "small.png").read_bytes() == b"x" * 16
    assert not (tmp_path / "big.png").exists()


@both
async def test_a_data_uri_over_the_size_limit_is_refused(tmp_path: Path, is_async: bool,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_constants, "MAX_DOWNLOAD_BYTES", 4)
    p = await predict(Host("data:,hello"), is_async)
    with pytest.raises(MalformedResponseError, match="download limit"):
        await save(p, tmp_path, is_async)


def test_the_limit_applies_while_reading_when_no_length_is_announced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_constants, "MAX_DOWNLOAD_BYTES", 10)
    sink = Sink(HTTPResponse(200, {}, b""), f"{CDN}/x.bin", "replicate", None)
    sink.add(b"x" * 6)
    with pytest.raises(MalformedResponseError, match="download limit"):
        sink.add(b"x" * 6)
    with pytest.raises(MalformedResponseError, match="download limit"):
        Sink(HTTPResponse(200, {"content-length": "11"}, b""), f"{CDN}/x.bin", "replicate", None)


def test_the_default_limit_is_512_mib() -> None:
    assert _constants.MAX_DOWNLOAD_BYTES == 512 * 1024 * 1024


@both
@pytest.mark.parametrize("output", [None, "a red bicycle", [], {"text": "hi", "n": 3}, ["ftp://x/y.bin"]])
async def test_nothing_to_save_is_a_clear_error(tmp_path: Path, is_async: bool, output: Any) -> None:
    host = Host(output)
    p = await predict(host, is_async)
    with pytest.raises(InvalidRequestError, match="no file URLs"):
        await save(p, tmp_path / "out", is_async)
    assert not (tmp_path / "out").exists()
    assert host.downloads == []


@both
async def test_a_failed_download_is_a_typed_error_without_the_signature(tmp_path: Path, is_async: bool) -> None:
    host = Host(f"{CDN}/expired.png?X-Amz-Signature=s3cr3t")
    p = await predict(host, is_async)
    with pytest.raises(NotFoundError) as info:
        await save(p, tmp_path, is_async)
    assert info.value.status == 404
    assert info.value.provider == "replicate"
    assert "s3cr3t" not in str(info.value)


@both
async def test_redirects_are_followed_without_the_key(tmp_path: Path, is_async: bool) -> None:
    host = Host(f"{CDN}/out.png", {
        f"{CDN}/out.png": httpx.Response(302, headers={"location": "https://cdn2.example.com/blob/out.png?t=1"}),
        "https://cdn2.example.com/blob/out.png": PNG,
    })
    p = await predict(host, is_async)
    paths = await save(p, tmp_path, is_async)
    assert [x.name for x in paths] == ["out.png"]
    assert paths[0].read_bytes() == PNG
    assert [r.url.host for r in host.downloads] == ["replicate.delivery", "cdn2.example.com"]
    assert all("authorization" not in r.headers for r in host.downloads)


@both
async def test_redirect_loops_end(tmp_path: Path, is_async: bool) -> None:
    loop = httpx.Response(302, headers={"location": "/xezq/f00d/loop.png"})
    host = Host(f"{CDN}/loop.png", {f"{CDN}/loop.png": loop})
    p = await predict(host, is_async)
    with pytest.raises(MalformedResponseError, match="redirects"):
        await save(p, tmp_path, is_async)
    assert len(host.downloads) == _constants.MAX_DOWNLOAD_REDIRECTS + 1


async def test_sync_save_on_an_async_clients_prediction_says_to_await(tmp_path: Path) -> None:
    p = await predict(Host(f"{CDN}/out.png", {f"{CDN}/out.png": PNG}), True)
    with pytest.raises(InvalidRequestError, match="async_save"):
        p.save(tmp_path)


def test_a_prediction_built_by_hand_saves_data_uris_but_cannot_download(tmp_path: Path) -> None:
    p = ck.Prediction(provider="replicate", model="acme/x", id="p1", status="succeeded", output="data:,hi")
    assert [x.read_bytes() for x in p.save(tmp_path)] == [b"hi"]
    p.output = f"{CDN}/out.png"
    with pytest.raises(RuntimeError, match="not attached to a client"):
        p.save(tmp_path)


def test_file_urls_and_names_are_pure() -> None:
    assert file_urls({"a": ["https://h/x.png", ("HTTP://h/y.png",)], "b": "text"}) == [
        "https://h/x.png", "HTTP://h/y.png"]
    assert file_names(["https://h/a.tar.gz", "https://h/b/a.tar.gz", "https://h/.hidden", "https://h/c/.hidden",
                       "https://h/sp%20ace.png"]) == [
        "a.tar.gz", "a.tar-1.gz", ".hidden", ".hidden-1", "sp ace.png"]
