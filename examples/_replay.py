"""Run any example offline, from outside it: ``python examples/_replay.py examples/NAME.py [ARGS]``.

The examples are plain programs: they make a ``ck.Client()`` and call providers, as your code would. This wrapper
applies the offline replay around one of them::

    # offline: examples/cassettes/chat_fallback.yaml
    python examples/_replay.py examples/chat_fallback.py
    # live: the example's keys in the environment
    python examples/chat_fallback.py
    # live, and (re)writes the cassette
    python examples/_replay.py --record examples/chat_fallback.py

Replaying, it plays the cassette with vcrpy (``record_mode="none"``: a request that is not in it fails) while
every connection to a host other than this machine is refused, so nothing can leave the machine, and checks at
the end that every recorded exchange was played. Every provider's key variable is set to a placeholder (the
request is built exactly as a live one, and the placeholder goes nowhere), ``COMPUTEKIT_CONFIG`` points at an
empty config and ``COMPUTEKIT_LEDGER`` at an in-memory ledger, so a replay reads none of your settings and adds
nothing to your spend. Waits (retry back-offs, polling) are not slept: the answers are already recorded.

The cassettes in ``cassettes/`` are **authored**: written by hand in the shape of each provider's documented API,
and marked ``# AUTHORED:`` on their first line. ``--record`` replaces one with real traffic, keys filtered out.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import re
import runpy
import socket
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CASSETTES = HERE / "cassettes"

# Requests are matched on what they ask for; the adapters' own tests pin the exact
# bodies.
MATCH_ON = ["method", "scheme", "host", "port", "path", "query"]
# Headers that carry credentials or account identity: never written to a cassette.
FILTERED_HEADERS = [
    "authorization",
    "api-key",
    "x-api-key",
    "cookie",
    "set-cookie",
    "openai-organization",
    "openai-project",
]
_KEY_SHAPES = re.compile(
    r"(?:sk|rk|pk)[-_][A-Za-z0-9_\-]{16,}|r8_[A-Za-z0-9]{20,}|gsk_[A-Za-z0-9]{20,}|hf_[A-Za-z0-9]{20,}"
)
PLACEHOLDER_KEY = "replay-placeholder-key"


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
        socket.socket.connect,
        socket.socket.connect_ex,
        socket.getaddrinfo,
    )

    def refuse(address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else None
        if not (
            isinstance(address, str) or _is_local(host)
        ):  # AF_UNIX paths are local too
            raise ConnectionRefusedError(
                f"--replay blocks the network: a request to {host} was not in the cassette"
            )

    def connect(self: socket.socket, address: Any) -> None:
        refuse(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        refuse(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        refuse((host, 0))
        return real_getaddrinfo(host, *args, **kwargs)

    # type: ignore[method-assign]
    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
    socket.getaddrinfo = getaddrinfo
    try:
        yield
    finally:
        # type: ignore[method-assign]
        socket.socket.connect, socket.socket.connect_ex = real_connect, real_connect_ex
        socket.getaddrinfo = real_getaddrinfo


def _scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    """At record time: drop credential headers, and mask anything key-shaped in the rest."""
    headers = response.get("headers", {})
    for name in list(headers):
        if name.lower() in FILTERED_HEADERS:
            del headers[name]
    body = response.get("body", {})
    if isinstance(body.get("string"), bytes):
        with contextlib.suppress(
            UnicodeDecodeError
        ):  # binary output (an image) holds no key
            body["string"] = _KEY_SHAPES.sub(
                "REDACTED", body["string"].decode()
            ).encode()
    return response


def _placeholder_keys() -> dict[str, str]:
    """A placeholder for every provider's key variable: a real key, if set, is not even read while replaying."""
    from computekit.adapters import adapter_class
    from computekit.adapters._registry import providers

    return {
        var: PLACEHOLDER_KEY
        for name in providers()
        for var in adapter_class(name).defaults_for(name)[1]
    }


def _no_wait(seconds: float) -> None:
    """Replay answers at once: waits between tries and polls are not spent."""


async def _no_async_wait(seconds: float, result: Any = None) -> Any:
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--record",
        action="store_true",
        help="run live and rewrite the example's cassette",
    )
    parser.add_argument("example", help="the example to run (examples/NAME.py)")
    parser.add_argument(
        "args", nargs=argparse.REMAINDER, help="the example's own arguments"
    )
    ns = parser.parse_args(argv)
    script = Path(ns.example).resolve()
    cassette = CASSETTES / f"{script.stem}.yaml"
    if not cassette.is_file():
        raise SystemExit(f"no cassette for {script.name}: {cassette} does not exist")
    try:
        import vcr
    except ImportError:
        raise SystemExit(
            "replay needs vcrpy: pip install vcrpy (computekit's test extra has it)"
        ) from None
    sys.argv = [str(script), *ns.args]
    if ns.record:
        recorder = vcr.VCR(
            record_mode="all",
            match_on=MATCH_ON,
            filter_headers=FILTERED_HEADERS,
            before_record_response=_scrub_response,
            decode_compressed_response=True,
        )
        with recorder.use_cassette(str(cassette)):
            runpy.run_path(str(script), run_name="__main__")
        print(
            f"(recorded to {cassette}: mark its first line '# RECORDED: <date>' and check it before committing)"
        )
        return
    import asyncio
    import time

    time.sleep = (
        _no_wait  # before computekit is imported: its default clocks are bound then
    )
    asyncio.sleep = _no_async_wait  # type: ignore[assignment]
    with tempfile.TemporaryDirectory(prefix="computekit-replay-") as tmp:
        empty_config = Path(tmp) / "computekit.toml"
        empty_config.write_text("", "utf-8")
        os.environ.update(
            {
                "COMPUTEKIT_CONFIG": str(empty_config),
                "COMPUTEKIT_LEDGER": "sqlite://:memory:",
                **_placeholder_keys(),
            }
        )
        with (
            _network_blocked(),
            vcr.VCR(record_mode="none", match_on=MATCH_ON).use_cassette(
                str(cassette)
            ) as played,
        ):
            runpy.run_path(str(script), run_name="__main__")
            unplayed = len(played.data) - played.play_count
            if unplayed or not played.all_played:
                raise SystemExit(
                    f"{cassette.name}: {unplayed} recorded exchange(s) were not played"
                )
    print(
        f"(replayed offline from examples/cassettes/{cassette.name}: authored responses, no network)"
    )


if __name__ == "__main__":
    main()
