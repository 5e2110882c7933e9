"""``computekit demo``: real calls through the real client, answered offline from recordings shipped here.

``recordings.json`` is **authored**, not recorded: hand-written exchanges shaped after the providers' public API
references (its ``_comment`` says so). Replay goes through an in-process server (:mod:`computekit._inprocess`):
each provider's base URL is rewritten to ``inproc://``, so every request is built, sent, retried, parsed, priced
and written to a ledger exactly as a live one would be, through the default transports; only the bytes on the
wire come from the file. No key, no network and no optional package (httpx included) are needed, and the user's
ledger is not touched.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

from .. import _inprocess

if TYPE_CHECKING:
    from .._client import Client
    from .._types import Chunk, Completion, Embeddings
    from ..adapters._base import HTTPRequest

__all__ = ["RECORDINGS_FILE", "Replayer", "load_recordings", "replay_client", "run_scenario"]

RECORDINGS_FILE: Final = "recordings.json"
_HTTPS: Final = "https://"
_ids = itertools.count(1)


def load_recordings() -> dict[str, Any]:
    """The demo's recordings (the ``recordings.json`` shipped inside this package)."""
    text = resources.files(__package__).joinpath(RECORDINGS_FILE).read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def _no_sleep(seconds: float) -> None:
    """Replay honours a server's wait without spending it."""


async def _no_asleep(seconds: float) -> None:
    """The async twin of :func:`_no_sleep`."""


def _sse(events: list[Any]) -> list[bytes]:
    out: list[bytes] = []
    for ev in events:
        data = ev if isinstance(ev, str) else json.dumps(ev, separators=(",", ":"))
        out.append(f"data: {data}\n\n".encode())
    return out


class Replayer:
    """An in-process server that answers from one scenario's recorded exchanges, in order.

    It is mounted under a host of its own (``demo-N.api.openai.com``); :meth:`base_url` turns a provider's
    ``https://`` base URL into the ``inproc://`` one that reaches it, and requests are matched against the
    recorded ``https://`` URLs. A request that does not match the next recorded one (method, URL, ``model`` and
    ``stream`` in the body) gets a 404 naming what was expected: a stale recording fails loudly instead of
    answering the wrong call.
    """

    def __init__(self) -> None:
        self._queue: list[Mapping[str, Any]] = []
        self._prefix = f"demo-{next(_ids)}."
        self._hosts: set[str] = set()
        self.served = 0

    def base_url(self, url: str) -> str:
        """The ``inproc://`` twin of an ``https://`` base URL (mounting this replayer there)."""
        if not url.startswith(_HTTPS):
            raise ValueError(f"the demo replays https:// base URLs only, not {url!r}")
        host = self._prefix + url[len(_HTTPS):].split("/", 1)[0]
        if host not in self._hosts:
            _inprocess.mount(host, self)
            self._hosts.add(host)
        return _inprocess.SCHEME + self._prefix + url[len(_HTTPS):]

    def close(self) -> None:
        """Unmount this replayer."""
        for host in self._hosts:
            _inprocess.unmount(host, self)
        self._hosts.clear()

    def expect(self, exchanges: list[Mapping[str, Any]]) -> None:
        """Answer the next requests with these exchanges."""
        self._queue = list(exchanges)

    @property
    def pending(self) -> int:
        """Recorded exchanges not replayed yet."""
        return len(self._queue)

    def respond(self, req: HTTPRequest, provider: str, model: str | None) -> _inprocess.LocalReply:
        url = _HTTPS + req.url[len(_inprocess.SCHEME + self._prefix):]
        if not self._queue:
            return self._missing(req.method, url, "no recorded response is left for this scenario")
        want = self._queue[0]["request"]
        content = req.body()
        try:
            body = json.loads(content) if content else {}
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        want_body = want.get("json") or {}
        if (
            req.method != want["method"]
            or url != want["url"]
            or body.get("model") != want_body.get("model")
            or bool(body.get("stream")) != bool(want_body.get("stream"))
        ):
            return self._missing(req.method, url, f"the recording expects {want['method']} {want['url']}")
        resp = self._queue.pop(0)["response"]
        self.served += 1
        headers = dict(resp.get("headers") or {})
        if "sse" in resp:
            headers.setdefault("content-type", "text/event-stream")
            return _inprocess.LocalReply(resp["status"], headers, _sse(resp["sse"]))
        headers.setdefault("content-type", "application/json")
        return _inprocess.LocalReply(resp["status"], headers, [json.dumps(resp["json"]).encode()])

    def sleep(self, seconds: float) -> None:
        _no_sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        await _no_asleep(seconds)

    @staticmethod
    def _missing(method: str, url: str, why: str) -> _inprocess.LocalReply:
        msg = f"computekit demo: no recording for {method} {url}: {why}"
        body = {"error": {"message": msg, "type": "invalid_request_error", "code": None}}
        return _inprocess.LocalReply(404, {"content-type": "application/json"}, [json.dumps(body).encode()])


def replay_client(ledger: str, recordings: Mapping[str, Any] | None = None) -> tuple[Client, Replayer]:
    """A :class:`~computekit.Client` whose requests are answered by a :class:`Replayer`.

    Args:
        ledger: The ledger setting (``"sqlite:///..."``): the demo passes a throwaway one unless asked.
        recordings: The recordings (default: the shipped file); their ``providers`` carry placeholder keys and
            the documented base URLs, which the replayer takes over.

    Returns:
        The client (no config file is read, no retry waits are slept) and its replayer (``close()`` it after the
        client, to unmount it).
    """
    from .._client import Client
    from .._config import RetryConfig
    from .._retry import RetryPolicy

    rec = recordings if recordings is not None else load_recordings()
    replayer = Replayer()
    providers = {name: {**cfg, "base_url": replayer.base_url(cfg["base_url"])}
                 for name, cfg in rec["providers"].items()}
    client = Client(
        None,
        providers=providers,
        ledger=ledger,
        retry_policy=RetryPolicy(RetryConfig(), sleep=_no_sleep),
    )
    return client, replayer


def run_scenario(
    client: Client,
    replayer: Replayer,
    scenario: Mapping[str, Any],
    on_chunk: Callable[[Chunk], None] | None = None,
) -> Completion | Embeddings:
    """Run one recorded scenario through ``client``; ``on_chunk`` sees each streamed chunk as it comes.

    Raises:
        ComputeKitError: What the real call would raise.
        RuntimeError: The recording was not replayed to its end (it no longer matches the client).
    """
    replayer.expect(scenario["exchanges"])
    args = dict(scenario.get("args") or {})
    model: str = scenario["model"]
    tags = {"demo": str(scenario["id"])}
    verb = scenario["verb"]
    result: Completion | Embeddings
    if verb == "complete":
        result = client.complete(model, tags=tags, **args)
    elif verb == "stream":
        with client.stream(model, tags=tags, **args) as s:
            for chunk in s:
                if on_chunk is not None:
                    on_chunk(chunk)
            result = s.result
    elif verb == "embed":
        inputs = args.pop("inputs")
        result = client.embed(model, inputs, tags=tags, **args)
    else:
        raise ValueError(f"unknown demo verb {verb!r}")
    if replayer.pending:
        raise RuntimeError(f"demo scenario {scenario['id']!r}: {replayer.pending} recorded exchange(s) not used")
    return result
