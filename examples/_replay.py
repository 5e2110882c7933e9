"""Run an example offline from its cassette, live with your keys, or record a new cassette.

Every example in this folder takes the same flags::

    python examples/chat_fallback.py --replay    # offline: replays examples/cassettes/chat_fallback.yaml
    python examples/chat_fallback.py             # live: needs the example's keys in the environment
    python examples/chat_fallback.py --record    # live, and (re)writes the cassette, keys filtered out

``--replay`` plays the cassette with vcrpy (``record_mode="none"``: a request that is not in it fails) while
every connection to a host other than this machine is refused, so nothing can leave the machine; it checks at the
end that every recorded exchange was played. The keys an example needs are set to placeholders for the run (the
request is built exactly as a live one, and the placeholder goes nowhere). The client gets no config file and an
in-memory ledger, so replaying touches none of your settings or spend.

The cassettes in ``cassettes/`` are **authored**: written by hand in the shape of each provider's documented API,
and marked ``# AUTHORED:`` on their first line. ``--record`` replaces one with real traffic.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import re
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CASSETTES = HERE / "cassettes"

# Requests are matched on what they ask for; the adapters' own tests pin the exact bodies.
MATCH_ON = ["method", "scheme", "host", "port", "path", "query"]
# Headers that carry credentials or account identity: never written to a cassette.
FILTERED_HEADERS = ["authorization", "api-key", "x-api-key", "cookie", "set-cookie", "openai-organization",
                    "openai-project"]
_KEY_SHAPES = re.compile(
    r"(?:sk|rk|pk)[-_][A-Za-z0-9_\-]{16,}|r8_[A-Za-z0-9]{20,}|gsk_[A-Za-z0-9]{20,}|hf_[A-Za-z0-9]{20,}"
)
PLACEHOLDER_KEY = "replay-placeholder-key"


@dataclass
class Session:
    """How this run of an example talks to the providers."""

    name: str
    mode: str  # "replay", "live" or "record"
    client_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for ``ck.Client`` / ``ck.AsyncClient``: no config file and an in-memory ledger when
    replaying; nothing (your config, your ledger) when live."""

    args: argparse.Namespace = field(default_factory=argparse.Namespace)
    """The command line, with the example's own options (``--plot`` ...) when it adds some."""

    @property
    def replay(self) -> bool:
        return self.mode == "replay"


def _parse(argv: Sequence[str] | None, description: str | None,
           options: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    if options is not None:
        options(parser)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--replay", action="store_true", help="offline: replay the example's cassette")
    group.add_argument("--record", action="store_true", help="live, and rewrite the example's cassette")
    return parser.parse_args(argv)


@contextlib.contextmanager
def _placeholder_keys(env_vars: Sequence[str]) -> Iterator[None]:
    saved = {v: os.environ.get(v) for v in env_vars}
    try:
        for v in env_vars:
            os.environ[v] = PLACEHOLDER_KEY  # a real key, if set, is not even read while replaying
        yield
    finally:
        for v, old in saved.items():
            if old is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = old


def _is_local(host: Any) -> bool:
    if host in ("localhost", None, ""):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


@contextlib.contextmanager
def _network_blocked() -> Iterator[None]:
    """Refuse every connection (and name lookup) that would leave this machine."""
    real_connect, real_connect_ex, real_getaddrinfo = (
        socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo)

    def refuse(address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else None
        if not (isinstance(address, str) or _is_local(host)):  # AF_UNIX paths are local too
            raise ConnectionRefusedError(f"--replay blocks the network: a request to {host} was not in the cassette")

    def connect(self: socket.socket, address: Any) -> None:
        refuse(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        refuse(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        refuse((host, 0))
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo
    try:
        yield
    finally:
        socket.socket.connect, socket.socket.connect_ex = real_connect, real_connect_ex  # type: ignore[method-assign]
        socket.getaddrinfo = real_getaddrinfo


def _scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    """At record time: drop credential headers, and mask anything key-shaped in the rest."""
    headers = response.get("headers", {})
    for name in list(headers):
        if name.lower() in FILTERED_HEADERS:
            del headers[name]
    body = response.get("body", {})
    if isinstance(body.get("string"), bytes):
        with contextlib.suppress(UnicodeDecodeError):  # binary output (an image) holds no key
            body["string"] = _KEY_SHAPES.sub("REDACTED", body["string"].decode()).encode()
    return response


@contextlib.contextmanager
def session(
    name: str,
    key_env: Sequence[str],
    *,
    argv: Sequence[str] | None = None,
    description: str | None = None,
    options: Callable[[argparse.ArgumentParser], None] | None = None,
) -> Iterator[Session]:
    """The example's session: replayed, live, or recording, from its command-line flags.

    Args:
        name: The example's name; its cassette is ``cassettes/<name>.yaml``.
        key_env: The environment variables holding the keys the example needs (live and record modes).
        argv: The command-line arguments (default: ``sys.argv[1:]``).
        description: The example's one-line description, for ``--help``.
        options: Adds the example's own command-line options to the parser (they land in ``Session.args``).
    """
    args = _parse(argv, description, options)
    cassette = CASSETTES / f"{name}.yaml"
    if args.replay:
        try:
            import vcr
        except ImportError:
            raise SystemExit("--replay needs vcrpy: pip install vcrpy (computekit's test extra has it)") from None

        with (
            _placeholder_keys(key_env),
            _network_blocked(),
            vcr.VCR(record_mode="none", match_on=MATCH_ON).use_cassette(str(cassette)) as played,
        ):
            yield Session(name, "replay", {"config": None, "ledger": "sqlite://:memory:"}, args)
            unplayed = len(played.data) - played.play_count
            if unplayed or not played.all_played:
                raise SystemExit(f"{cassette.name}: {unplayed} recorded exchange(s) were not played")
        print(f"(replayed offline from examples/cassettes/{cassette.name}: authored responses, no network)")
        return
    missing = [v for v in key_env if not os.environ.get(v)]
    if missing:
        raise SystemExit(f"set {', '.join(missing)} to run this example live, or pass --replay to run it offline")
    if args.record:
        import vcr

        recorder = vcr.VCR(record_mode="all", match_on=MATCH_ON, filter_headers=FILTERED_HEADERS,
                           before_record_response=_scrub_response, decode_compressed_response=True)
        with recorder.use_cassette(str(cassette)):
            yield Session(name, "record", {}, args)
        print(f"(recorded to {cassette}: mark its first line '# RECORDED: <date>' and check it before committing)")
        return
    yield Session(name, "live", {}, args)

