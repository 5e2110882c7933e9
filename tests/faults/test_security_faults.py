"""Security and robustness on the wire, against loopback fault servers, sync and async (cases S1 to S8 of the
catalogue in ``README.md``).

Keys go only to the exact origin they were configured for, whatever a URL hides or an answer names; redirects are
never followed, whatever client is passed; ``save()`` does not fetch from private addresses and never prints a
signature; decoded bodies and stream events are capped with memory bounded; the total deadline bounds a server
that drips its headers; a forked child never shares its parent's pooled connections; one ``AsyncClient`` used
from several event loops keeps one session per loop and closes them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import gzip
import json
import os
import socket
import threading
import time
import traceback
import tracemalloc
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fault_server import (
    WAIT_S,
    FaultServer,
    Reply,
    Request,
    Waits,
    chat,
    close,
    make_client,
    policy,
    prediction,
    read_stream,
    run,
)

import computekit as ck
from computekit import _urls

CHAT = "openai:gpt-4o-mini"
KEY = "sk-secnet-canary-5f0e1d2c3b4a69788796"
REPLICATE = "replicate:acme/upscaler"
REPLICATE_KEY = "r8_secnet0123456789abcdefghij"

both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
transports = pytest.mark.parametrize("http", ["default", "httpx"])


def client_on(is_async: bool, http: str, base_url: str, waits: Waits, **settings: Any) -> Any:
    """An openai client at ``base_url`` on the default transports, or on a caller's httpx client that follows
    redirects (the riskiest client a caller can pass)."""
    if http == "httpx":
        settings["http_client"] = (httpx.AsyncClient if is_async else httpx.Client)(follow_redirects=True)
    return make_client(is_async, base_url, waits, api_key=KEY, retry={"max_retries": 0}, **settings)


def leaks(err: BaseException, secret: str) -> bool:
    text = "".join(traceback.format_exception(err)) + repr(err) + str(getattr(err, "body", "")) + str(
        getattr(err, "headers", ""))
    return secret in text


# ============================================================================================= S1: ambiguous URLs


def ambiguous_urls(good: int, evil: int) -> list[str]:
    return [
        f"http://127.0.0.1:{evil}\\@127.0.0.1:{good}/v1",  # urlsplit: the good host; urllib3/WHATWG: the evil one
        f"http://127.0.0.1:{evil}@127.0.0.1:{good}/v1",  # user info
        f"http://127.0.0.1:{good}\t/v1",  # a control character
        f"http://127.0.0.1:{good}/v1\n",
        f"http://127.0.0.1%3A{evil}/v1",  # a percent-escape in the host
    ]


@both
async def test_ambiguous_base_urls_are_refused_before_anything_is_sent(faults: Any, waits: Waits,
                                                                       is_async: bool) -> None:
    good, evil = faults(chat()), faults(chat())
    client = make_client(is_async, good.url, waits, api_key=KEY)
    try:
        for url in ambiguous_urls(good.port, evil.port):
            with pytest.raises(ck.UnsafeURLError) as info:
                await run(client.complete(CHAT, "hi", base_url=url))
            assert not leaks(info.value, KEY)
        assert (good.hits, evil.hits) == (0, 0)
        # The configured origin itself still gets the key; another origin gets none.
        await run(client.complete(CHAT, "hi", base_url=good.url))
        await run(client.complete(CHAT, "hi", base_url=evil.url, api_key="sk-the-other-hosts-own"))
        assert [r.auth for r in good.requests] == [f"Bearer {KEY}"]
        assert [r.auth for r in evil.requests] == ["Bearer sk-the-other-hosts-own"]
    finally:
        await close(client)


@both
async def test_an_ambiguous_configured_base_url_is_refused(faults: Any, waits: Waits, is_async: bool) -> None:
    good, evil = faults(chat()), faults(chat())
    client = make_client(is_async, f"http://127.0.0.1:{evil.port}\\@127.0.0.1:{good.port}/v1", waits, api_key=KEY)
    try:
        with pytest.raises(ck.UnsafeURLError):
            await run(client.complete(CHAT, "hi"))
        assert (good.hits, evil.hits) == (0, 0)
    finally:
        await close(client)


# ============================================================================================= S2: redirects


@both
@transports
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirects_are_never_followed(faults: Any, waits: Waits, is_async: bool, http: str,
                                            status: int) -> None:
    elsewhere = faults(Reply(200, chat().body, echo_auth=True))
    srv = faults(Reply(status, {"error": {"message": "moved"}}, {"location": f"{elsewhere.url}/chat/completions"}))
    client = client_on(is_async, http, srv.url, waits)
    try:
        with pytest.raises(ck.APIStatusError) as info:
            await run(client.complete(CHAT, "hi"))
        assert info.value.status == status
        assert srv.hits == 1
        assert elsewhere.hits == 0
        with pytest.raises(ck.APIStatusError):
            await read_stream(client, CHAT)
        assert (srv.hits, elsewhere.hits) == (2, 0)
    finally:
        await close(client)


# ============================================================================================= S3: URLs named by a host


def replicate_client(is_async: bool, base_url: str, waits: Waits) -> Any:
    cls = ck.AsyncClient if is_async else ck.Client
    return cls(config=None, retry_policy=policy(waits, max_retries=0), ledger="none",
               providers={"replicate": {"base_url": base_url, "api_key": REPLICATE_KEY}})


def pointing_at(other: FaultServer, status: str = "starting", code: int = 201) -> Callable[..., bool]:
    """A Replicate prediction whose poll, cancel and stream URLs name ``other`` (another origin, plain http)."""

    def behave(srv: FaultServer, req: Request, sock: Any) -> bool:
        base = other.url
        return Reply(code, {"id": "pf01", "model": "acme/upscaler", "version": "v1", "input": {}, "logs": "",
                            "output": None, "error": None, "status": status,
                            "urls": {"get": f"{base}/predictions/pf01", "cancel": f"{base}/predictions/pf01/cancel",
                                     "stream": f"{base}/stream/pf01"}})(srv, req, sock)

    return behave


@both
async def test_poll_and_cancel_urls_on_another_host_never_get_the_key(faults: Any, waits: Waits,
                                                                      is_async: bool) -> None:
    other = faults(Reply(200, {"id": "pf01", "status": "succeeded"}, echo_auth=True))
    srv = faults([pointing_at(other), pointing_at(other, "processing", 200), pointing_at(other, "canceled", 200)])
    client = replicate_client(is_async, srv.url, waits)
    try:
        p = await run(client.predict(REPLICATE, {"x": 1}, wait=False, validate=False, hardware="gpu-t4"))
        p = await run(p.async_refresh() if is_async else p.refresh())
        assert p.status == "running"
        p = await run(p.async_cancel() if is_async else p.cancel())
        assert p.status == "canceled"
        assert other.hits == 0  # the named URLs were not followed: the ones built from base_url were
        assert [(r.method, r.path) for r in srv.requests[1:]] == [
            ("GET", "/v1/predictions/pf01"), ("POST", "/v1/predictions/pf01/cancel")]
        assert {r.auth for r in srv.requests} == {f"Bearer {REPLICATE_KEY}"}
    finally:
        await close(client)


@both
async def test_a_stream_url_on_another_host_is_fetched_without_the_key_or_refused(faults: Any, waits: Waits,
                                                                                  is_async: bool) -> None:
    other = faults(Reply(200, "event: done\ndata: {}\n\n", {"content-type": "text/event-stream"}))
    srv = faults(pointing_at(other))
    client = replicate_client(is_async, srv.url, waits)
    try:
        p = await run(client.predict(REPLICATE, {"x": 1}, wait=False, validate=False, hardware="gpu-t4"))
        # Plain http on another host: refused before anything is sent.
        with pytest.raises(ck.MalformedResponseError, match="must be a plain https URL"):
            p.async_stream() if is_async else p.stream()
        assert other.hits == 0
        # Over https on another host (Replicate's own streaming host): built without the key.
        https = p.model_copy(update={"urls": {**p.urls, "stream": "https://stream.replicate.test/v1/files/abc"}})
        adapter = client._core.adapter("replicate")
        req = adapter.build_prediction_stream(https)
        assert "authorization" not in {k.lower() for k in req.headers}
        assert KEY not in json.dumps(req.headers)
    finally:
        await close(client)


@both
async def test_fal_urls_on_another_host_are_not_followed_with_the_key(faults: Any, waits: Waits,
                                                                      is_async: bool) -> None:
    other = faults(Reply(200, {"status": "COMPLETED"}, echo_auth=True))

    def submitted(srv: FaultServer, req: Request, sock: Any) -> bool:
        base = f"{other.url}/acme/app/requests/r1"
        return Reply(200, {"request_id": "r1", "status_url": f"{base}/status", "response_url": base,
                           "cancel_url": f"{base}/cancel"})(srv, req, sock)

    srv = faults([submitted, Reply(200, {"status": "IN_PROGRESS", "logs": []})])
    cls = ck.AsyncClient if is_async else ck.Client
    client = cls(config=None, retry_policy=policy(waits, max_retries=0), ledger="none",
                 providers={"fal": {"base_url": srv.url, "api_key": "fal-secnet-key-0123456789"}})
    try:
        p = await run(client.predict("fal:acme/app", {"x": 1}, wait=False, validate=False))
        p = await run(p.async_refresh() if is_async else p.refresh())
        assert p.status == "running"
        assert other.hits == 0
        assert srv.requests[1].path == "/v1/acme/app/requests/r1/status?logs=1"
    finally:
        await close(client)


# ============================================================================================= S4: save()


def with_output(output: Any) -> Callable[..., bool]:
    return prediction("succeeded", 201, output=output, metrics={"predict_time": 1.0})


@both
async def test_save_refuses_private_addresses_unless_allowed(faults: Any, waits: Waits, is_async: bool,
                                                             tmp_path: Path) -> None:
    files = faults(Reply(200, b"PNGDATA", {"content-type": "image/png"}))
    srv = faults(with_output(f"{files.url}/out.png?X-Amz-Signature=topsecret"))
    client = replicate_client(is_async, srv.url, waits)
    try:
        p = await run(client.predict(REPLICATE, {"x": 1}, validate=False, hardware="gpu-t4"))
        with pytest.raises(ck.UnsafeURLError, match="loopback") as info:
            await run(p.async_save(tmp_path) if is_async else p.save(tmp_path))
        assert files.hits == 0
        assert not leaks(info.value, "topsecret")
        assert "allow_private_network=True" in str(info.value)
        for url in ("http://169.254.169.254/latest/meta-data", "http://10.0.0.8/x.png", "http://[::1]/x.png",
                    "http://[::ffff:127.0.0.1]/x.png", "http://localhost/x.png"):
            one = p.model_copy(update={"output": url})
            with pytest.raises(ck.UnsafeURLError):
                await run(one.async_save(tmp_path) if is_async else one.save(tmp_path))
        saved = await run(p.async_save(tmp_path, allow_private_network=True) if is_async
                          else p.save(tmp_path, allow_private_network=True))
        assert [f.read_bytes() for f in saved] == [b"PNGDATA"]
        assert [r.auth for r in files.requests] == [None]
    finally:
        await close(client)


@dataclass
class FakeDNS:
    """``cdn.test`` resolves to 127.0.0.1 the first time and to 10.9.9.9 afterwards (DNS rebinding); 127.0.0.1
    counts as public, 127.0.0.2 and 10.0.0.0/8 as private."""

    real: Callable[..., Any]
    asked: int = 0

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "cdn.test":
            self.asked += 1
            ip = "127.0.0.1" if self.asked == 1 else "10.9.9.9"
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, int(port or 0)))]
        return self.real(host, port, *args, **kwargs)


@both
async def test_save_connects_to_the_address_it_checked(faults: Any, waits: Waits, is_async: bool, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    dns = FakeDNS(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", dns)
    real_refusal = _urls.refused_address
    monkeypatch.setattr(_urls, "refused_address", lambda ip: None if ip == "127.0.0.1" else real_refusal(ip))
    files = faults([Reply(200, b"first"), Reply(302, b"", {"location": "http://127.0.0.2:9/second.png"})])
    srv = faults(with_output([f"http://cdn.test:{files.port}/first.png", f"http://cdn.test:{files.port}/r.png"]))
    client = replicate_client(is_async, srv.url, waits)
    try:
        p = await run(client.predict(REPLICATE, {"x": 1}, validate=False, hardware="gpu-t4"))
        one = p.model_copy(update={"output": p.output[0]})
        saved = await run(one.async_save(tmp_path) if is_async else one.save(tmp_path))
        assert [f.read_bytes() for f in saved] == [b"first"]
        assert dns.asked == 1  # one lookup, and the connection went to the address it returned
        assert files.requests[0].headers["host"] == f"cdn.test:{files.port}"
        # A redirect is checked again, hop by hop.
        dns.asked = 0
        two = p.model_copy(update={"output": p.output[1]})
        with pytest.raises(ck.UnsafeURLError, match=r"127\.0\.0\.2"):
            await run(two.async_save(tmp_path) if is_async else two.save(tmp_path))
        assert files.hits == 2
    finally:
        await close(client)


@both
async def test_a_failed_download_never_shows_the_signature(faults: Any, waits: Waits, is_async: bool,
                                                           tmp_path: Path) -> None:
    files = faults(Reply(404, {"error": "expired"}))
    srv = faults(with_output([f"{files.url}/a.png?X-Amz-Signature=topsecret",
                              "http://127.0.0.1:9/b.png?X-Amz-Signature=topsecret"]))
    client = replicate_client(is_async, srv.url, waits)
    try:
        p = await run(client.predict(REPLICATE, {"x": 1}, validate=False, hardware="gpu-t4"))
        for url in p.output:
            one = p.model_copy(update={"output": url})
            with pytest.raises(ck.ProviderError) as info:
                await run(one.async_save(tmp_path, allow_private_network=True) if is_async
                          else one.save(tmp_path, allow_private_network=True))
            assert not leaks(info.value, "topsecret"), str(info.value)
    finally:
        await close(client)


# ============================================================================================= S5: size limits


@dataclass
class Gzipped:
    """A 200 whose gzip body inflates to ``size`` bytes (a small answer that would fill memory)."""

    size: int
    ctype: str = "application/json"

    def __post_init__(self) -> None:
        self.data = gzip.compress(b" " * self.size, 9)

    def __call__(self, srv: FaultServer, req: Request, sock: socket.socket) -> bool:
        head = (f"HTTP/1.1 200 OK\r\ncontent-type: {self.ctype}\r\ncontent-encoding: gzip\r\n"
                f"content-length: {len(self.data)}\r\n\r\n").encode()
        with_closing = True
        try:
            sock.sendall(head + self.data)
        except OSError:
            with_closing = False
        return with_closing


@both
@transports
async def test_a_body_that_inflates_past_its_limit_is_refused_with_bounded_memory(faults: Any, waits: Waits,
                                                                                  is_async: bool, http: str) -> None:
    limit = 1024 * 1024
    srv = faults(Gzipped(64 * limit))  # 64 MiB from ~64 KiB on the wire
    client = client_on(is_async, http, srv.url, waits, limits={"complete_bytes": limit})
    gc.collect()
    tracemalloc.start()
    try:
        with pytest.raises(ck.ResponseTooLargeError) as info:
            await run(client.complete(CHAT, "hi"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await close(client)
    assert isinstance(info.value, ck.MalformedResponseError)
    assert info.value.limit == limit
    assert info.value.status == 200
    assert peak < 12 * limit, f"peak {peak} bytes"


@both
@transports
async def test_an_announced_body_over_the_limit_is_refused_unread(faults: Any, waits: Waits, is_async: bool,
                                                                  http: str) -> None:
    srv = faults(Reply(200, {"pad": "x" * 5000}))
    client = client_on(is_async, http, srv.url, waits, limits={"complete_bytes": 1000})
    try:
        with pytest.raises(ck.ResponseTooLargeError, match="1000-byte limit"):
            await run(client.complete(CHAT, "hi"))
        # Another verb has its own limit: the same answer is read (and found malformed) for embed().
        with pytest.raises(ck.MalformedResponseError) as info:
            await run(client.embed("openai:text-embedding-3-small", "hi"))
        assert not isinstance(info.value, ck.ResponseTooLargeError)
    finally:
        await close(client)


@dataclass
class OneHugeChunk:
    """An SSE answer whose one HTTP chunk holds a comment line of ``size`` bytes, newline included."""

    size: int

    def __post_init__(self) -> None:
        self.block = b"x" * (1 << 20)  # made before the test measures memory; the line is sent from it

    def __call__(self, srv: FaultServer, req: Request, sock: socket.socket) -> bool:
        head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        with contextlib.suppress(OSError):
            sock.sendall(head + b"%x\r\n: " % (self.size + 4))
            for _ in range(self.size // len(self.block)):
                if srv.stop.is_set():
                    break
                sock.sendall(self.block)
            sock.sendall(b"\n\n\r\n0\r\n\r\n")
        return False


@both
@transports
async def test_one_huge_http_chunk_cannot_pass_the_event_limit(faults: Any, waits: Waits, is_async: bool,
                                                               http: str) -> None:
    limit = 256 * 1024
    srv = faults(OneHugeChunk(32 * 1024 * 1024))
    client = client_on(is_async, http, srv.url, waits, limits={"stream_event_bytes": limit})
    gc.collect()
    tracemalloc.start()
    try:
        with pytest.raises(ck.ResponseTooLargeError) as info:
            await read_stream(client, CHAT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await close(client)
    assert info.value.limit == limit
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes"


# ============================================================================================= S6: dripped headers


@dataclass
class DripHead:
    """Response headers sent one byte every ``every`` seconds (each read well inside the read timeout)."""

    every: float = 0.05

    def __call__(self, srv: FaultServer, req: Request, sock: socket.socket) -> bool:
        head = b"HTTP/1.1 200 OK\r\n" + b"".join(b"x-pad-%d: %s\r\n" % (i, b"y" * 40) for i in range(200))
        for byte in head:
            if srv.stop.wait(self.every):
                return False
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                return False
        return False


@both
@transports
@pytest.mark.parametrize("verb", ["complete", "stream"])
async def test_dripped_headers_are_cut_by_the_total_deadline(faults: Any, waits: Waits, is_async: bool, http: str,
                                                             verb: str) -> None:
    srv = faults(DripHead())
    client = client_on(is_async, http, srv.url, waits, routing={"deadline_s": 0.6},
                       provider={"timeout": WAIT_S})
    try:
        t0 = time.monotonic()
        with pytest.raises(ck.APITimeoutError):
            await run(client.complete(CHAT, "hi") if verb == "complete" else read_stream(client, CHAT))
        took = time.monotonic() - t0
    finally:
        await close(client)
    assert took < 0.6 + 0.5, f"took {took:.2f}s for a 0.6s deadline"
    assert srv.hits == 1


# ============================================================================================= S7: fork


def echo(srv: FaultServer, req: Request, sock: socket.socket) -> bool:
    """A chat completion that answers the prompt back (so that a swapped answer shows)."""
    return chat(req.json()["messages"][-1]["content"])(srv, req, sock)


def calls(client: Any, who: str, n: int) -> list[bool]:
    return [client.complete(CHAT, f"{who}-{i}").text == f"{who}-{i}" for i in range(n)]


async def acalls(client: Any, who: str, n: int) -> list[bool]:
    return [(await client.complete(CHAT, f"{who}-{i}")).text == f"{who}-{i}" for i in range(n)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
@both
def test_a_forked_child_never_shares_pooled_connections(faults: Any, waits: Waits, is_async: bool) -> None:
    srv = faults(echo)
    client = make_client(is_async, srv.url, waits, api_key=KEY)
    if is_async:
        loop = asyncio.new_event_loop()
        assert all(loop.run_until_complete(acalls(client, "before", 2)))
    else:
        assert all(calls(client, "before", 2))
    assert srv.connections == 1  # one pooled keep-alive connection, now shared by parent and child
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, and never return into pytest
        ok = False
        try:
            reset = not client._transport._sessions if is_async else client._transport._direct is None
            ok = reset and all(asyncio.run(acalls(client, "child", 20)) if is_async else calls(client, "child", 20))
        finally:
            os.write(write, b"1" if ok else b"0")
            os._exit(0)
    os.close(write)
    try:
        mine = loop.run_until_complete(acalls(client, "parent", 20)) if is_async else calls(client, "parent", 20)
        got = os.read(read, 1)
        os.waitpid(pid, 0)
    finally:
        os.close(read)
        if is_async:
            loop.run_until_complete(client.aclose())
            loop.close()
        else:
            client.close()
    assert all(mine)
    assert got == b"1", "the child got a swapped answer, or still held the parent's pool"
    assert srv.connections >= 2  # the child opened its own


# ============================================================================================= S8: event loops


def test_one_async_client_on_two_event_loops_keeps_one_session_each_and_closes_all(
        faults: Any, waits: Waits, monkeypatch: pytest.MonkeyPatch) -> None:
    import aiohttp

    made: list[aiohttp.ClientSession] = []
    init = aiohttp.ClientSession.__init__

    def tracked(self: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(aiohttp.ClientSession, "__init__", tracked)
    srv = faults(echo)
    client = make_client(True, srv.url, waits, api_key=KEY)
    both_running = threading.Barrier(2, timeout=WAIT_S)
    results: dict[str, list[bool]] = {}

    async def work(who: str) -> None:
        results[who] = await acalls(client, who, 2)
        await asyncio.to_thread(both_running.wait)  # both loops are alive at once
        results[who] += await acalls(client, who, 2)

    threads = [threading.Thread(target=asyncio.run, args=(work(who),)) for who in ("a", "b")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT_S)
        assert len(made) == 2  # one per loop, none replaced while in use
        asyncio.run(client.aclose())
        assert all(s.closed for s in made)
        del made[:]
        gc.collect()
    assert results == {"a": [True] * 4, "b": [True] * 4}
    assert not [w for w in caught if "Unclosed" in str(w.message)]
