"""A FastAPI app that answers chat requests through one shared ``ck.AsyncClient``, with the cost of each answer.

- ``POST /chat`` ``{"prompt": "...", "user": "42"}`` -> the answer, who answered it, its usage and exact cost
  (a decimal string: JSON numbers would round it);
- ``GET /spend`` -> spend so far from the ledger, by target.

One ``AsyncClient`` is opened when the app starts and closed when it stops, so connections are pooled across
requests. Each call is tagged with the user, so the ledger can tell who spent what. The handler logic lives in
``ChatService``, which has no FastAPI in it (and is tested without it).

    # drives the app in-process (FastAPI's TestClient), live:
    python examples/fastapi_app.py
                                                   # ANTHROPIC_API_KEY
    python examples/_replay.py examples/fastapi_app.py    # the same requests, offline
    # serve it (pip install fastapi uvicorn)
    uvicorn fastapi_app:app --app-dir examples
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from pydantic import BaseModel

import computekit as ck

MODEL = "anthropic:claude-haiku-4-5"
SYSTEM = "Answer in one short sentence."


# --8<-- [start:app]
class ChatIn(BaseModel):
    """The body of ``POST /chat``."""

    prompt: str
    user: str | None = None


class ChatService:
    """What the endpoints do, over one ``AsyncClient`` (no web framework here)."""

    def __init__(self, client: ck.AsyncClient) -> None:
        self.client = client

    async def chat(self, prompt: str, user: str | None = None) -> dict[str, Any]:
        r = await self.client.complete(
            MODEL,
            messages=[
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": prompt},
            ],
            max_tokens=200,
            tags={"user": user} if user else None,
        )
        return {
            "text": r.text,
            "answered_by": f"{r.provider}:{r.response_model or r.model}",
            "usage": {
                "input_tokens": r.usage.input_tokens,
                "output_tokens": r.usage.output_tokens,
            },
            "cost_usd": None
            if r.cost.total is None
            else str(r.cost.total),  # None: unpriced, never 0
            "attempts": [
                {"target": f"{a.provider}:{a.model}", "outcome": a.outcome}
                for a in r.attempts
            ],
        }

    async def spend(self) -> dict[str, Any]:
        # The ledger is SQLite: read it off the event loop.
        report = await asyncio.to_thread(self.client.ledger.report, group_by="target")
        return {
            "total_usd": str(report.total),
            "unpriced_calls": report.unpriced,
            "by_target": {
                row.key: {"calls": row.calls, "cost_usd": str(row.cost)}
                for row in report.rows
            },
        }


def create_app(client_kwargs: Mapping[str, Any] | None = None) -> Any:
    """The FastAPI app (FastAPI is imported here: the rest works without it)."""
    from fastapi import FastAPI

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with ck.AsyncClient(**dict(client_kwargs or {})) as client:
            app.state.chat = ChatService(client)
            yield

    app = FastAPI(title="computekit chat", lifespan=lifespan)

    @app.post("/chat")
    async def chat(body: ChatIn) -> dict[str, Any]:
        service: ChatService = app.state.chat
        return await service.chat(body.prompt, body.user)

    @app.get("/spend")
    async def spend() -> dict[str, Any]:
        service: ChatService = app.state.chat
        return await service.spend()

    return app


# --8<-- [end:app]


try:
    app = create_app()  # for `uvicorn fastapi_app:app`
except ImportError:  # FastAPI is not installed: the handlers still run, see main()
    app = None


def show(title: str, data: Mapping[str, Any]) -> None:
    import json

    print(f"{title}\n{json.dumps(data, indent=2)}")


def main() -> None:
    prompt = "Name one use of a GPU besides graphics."
    try:
        from fastapi.testclient import TestClient
    except ImportError:
        print("(FastAPI is not installed: calling the handlers directly)")

        async def direct() -> None:
            async with ck.AsyncClient() as client:
                service = ChatService(client)
                show("POST /chat", await service.chat(prompt, "42"))
                show("GET /spend", await service.spend())

        asyncio.run(direct())
        return
    with TestClient(create_app()) as http:
        answer = http.post("/chat", json={"prompt": prompt, "user": "42"})
        answer.raise_for_status()
        show("POST /chat", answer.json())
        spend = http.get("/spend")
        spend.raise_for_status()
        show("GET /spend", spend.json())


if __name__ == "__main__":
    main()
