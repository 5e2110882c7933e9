"""``computekit demo``: real calls through the real client, answered offline from recordings shipped here.

``recordings.json`` is **authored**, not recorded: hand-written exchanges shaped after the providers' public API
references (its ``_comment`` says so). Replay goes through an :class:`httpx.MockTransport`, so every request
is built, sent, retried, parsed, priced and written to a ledger exactly as a live one would be; only the bytes
on the wire come from the file. No key and no network are needed, and the user's ledger is not touched.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import httpx

    from .._client import Client
    from .._types import Chunk, Completion, Embeddings

__all__ = ["RECORDINGS_FILE", "Replayer", "load_recordings", "replay_client", "run_scenario"]

RECORDINGS_FILE: Final = "recordings.json"


def load_recordings() -> dict[str, Any]:
    """The demo's recordings (the ``recordings.json`` shipped inside this package)."""
    text = resources.files(__package__).joinpath(RECORDINGS_FILE).read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def _no_sleep(seconds: float) -> None:
    """Replay honours a server's wait without spending it."""


def _sse(events: list[Any]) -> Iterator[bytes]:
    for ev in events:
        data = ev if isinstance(ev, str) else json.dumps(ev, separators=(",", ":"))
        yield f"data: {data}\n\n".encode()


class Replayer:
    """An :class:`httpx.MockTransport` handler that answers from one scenario's recorded exchanges, in order.

    A request that does not match the next recorded one (method, URL, ``model`` and ``stream`` in the body) gets
    a 404 naming what was expected: a stale recording fails loudly instead of answering the wrong call.
    """

    def __init__(self) -> None:
        self._queue: list[Mapping[str, Any]] = []
        self.served = 0

    def expect(self, exchanges: list[Mapping[str, Any]]) -> None:
        """Answer the next requests with these exchanges."""
        self._queue = list(exchanges)

    @property
    def pending(self) -> int:
        """Recorded exchanges not replayed yet."""
        return len(self._queue)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        import httpx

        if not self._queue:
            return self._missing(request, "no recorded response is left for this scenario")
        want = self._queue[0]["request"]
        try:
            body = json.loads(request.content) if request.content else {}
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        want_body = want.get("json") or {}
        if (
            request.method != want["method"]
            or str(request.url) != want["url"]
            or body.get("model") != want_body.get("model")
            or bool(body.get("stream")) != bool(want_body.get("stream"))
        ):
            return self._missing(request, f"the recording expects {want['method']} {want['url']}")
        resp = self._queue.pop(0)["response"]
        self.served += 1
        headers = dict(resp.get("headers") or {})
        if "sse" in resp:
            return httpx.Response(resp["status"], headers=headers, content=_sse(resp["sse"]))
        return httpx.Response(resp["status"], headers=headers, content=json.dumps(resp["json"]).encode())

    @staticmethod
    def _missing(request: httpx.Request, why: str) -> httpx.Response:
        import httpx

        msg = f"computekit demo: no recording for {request.method} {request.url}: {why}"
        return httpx.Response(404, json={"error": {"message": msg, "type": "invalid_request_error", "code": None}})


def replay_client(ledger: str, recordings: Mapping[str, Any] | None = None) -> tuple[Client, Replayer]:
    """A :class:`~computekit.Client` whose HTTP is answered by a :class:`Replayer`.

    Args:
        ledger: The ledger setting (``"sqlite:///..."``): the demo passes a throwaway one unless asked.
        recordings: The recordings (default: the shipped file); their ``providers`` carry placeholder keys.

    Returns:
        The client (no config file is read, no retry waits are slept) and its replayer.
    """
    import httpx

    from .._client import Client
    from .._config import RetryConfig
    from .._retry import RetryPolicy

    rec = recordings if recordings is not None else load_recordings()
    replayer = Replayer()
    client = Client(
        None,
        providers=rec["providers"],
        ledger=ledger,
        retry_policy=RetryPolicy(RetryConfig(), sleep=_no_sleep),
        http_client=httpx.Client(transport=httpx.MockTransport(replayer)),
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
