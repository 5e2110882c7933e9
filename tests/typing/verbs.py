"""Type-checked, never run: ``mypy --strict tests/typing`` (in .ci/run) must pass.

The module-level verbs carry their ``Client`` methods' full signatures, so a type checker catches a misspelled
or mistyped argument. Each wrong call below is marked with the error mypy must report: were the check to stop
catching it, the ``type: ignore`` would be unused, which ``--strict`` (``warn_unused_ignores``) reports.
"""

from __future__ import annotations

import computekit as ck


def right() -> None:
    r: ck.Completion = ck.complete("openai:gpt-4o-mini", "hi", max_tokens=60, temperature=0.2)
    with ck.stream("openai:gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stop=["\n"]) as s:
        for chunk in s:
            print(chunk.text, r.text)
    e: ck.Embeddings = ck.embed("openai:text-embedding-3-small", ["a", "b"], dimensions=256)
    p: ck.Prediction = ck.predict("replicate:acme/flux", {"prompt": "x"}, hardware="gpu-a40-large", wait=False)
    j: ck.FineTuneJob = ck.finetune("openai:gpt-4o-mini", training_file="train.jsonl", dry_run=True)
    b: ck.BatchJob = ck.batch("openai:gpt-4o-mini", "requests.jsonl", tags={"team": "search"}, estimate_only=True)
    for custom_id, answer in b.results():
        print(custom_id, answer)
    print(e.dimensions, p.status, j.status, b.saved)


async def right_async() -> None:
    r: ck.Completion = await ck.acomplete("openai:gpt-4o-mini", "hi", max_tokens=60)
    e: ck.Embeddings = await ck.aembed("openai:text-embedding-3-small", "a")
    hits: ck.Reranking = await ck.arerank("cohere:rerank-v3.5", "q", ["a", "b"], top_n=1)
    b: ck.BatchJob = await ck.abatch("openai:gpt-4o-mini", [{"custom_id": "a", "prompt": "hi"}])
    async for custom_id, answer in b.async_results():
        print(custom_id, answer)
    print(r.text, e.dimensions, hits.results)


def background(c: ck.Client, person: type[ck.Message]) -> None:
    """``background=True`` returns the handle, typed; ``False`` (or nothing) the completion."""
    h: ck.BackgroundResponse = c.complete("openai:o3", "hi", api="responses", background=True, max_tokens=60)
    h = c.responses.wait(h, timeout=60, poll_interval=1)
    r: ck.Completion = c.complete("openai:o3", "hi", background=False)
    typed: ck.BackgroundResponse[ck.Message] = ck.complete("openai:o3", "hi", response_format=person, background=True)
    print(h.completion, r.text, typed.completion.parsed if typed.completion else None)
    wrong: ck.Completion = c.complete("openai:o3", "hi", background=True)  # type: ignore[assignment]
    print(wrong)


async def background_async(a: ck.AsyncClient) -> None:
    h: ck.BackgroundResponse = await a.complete("openai:o3", "hi", background=True)
    h = await a.responses.wait(h)
    r: ck.Completion = await a.complete("openai:o3", "hi")
    print(h.status, r.text)


def wrong() -> None:
    ck.complete("openai:gpt-4o-mini", "hi", max_tokns=60)  # type: ignore[call-overload]
    ck.complete("openai:gpt-4o-mini", "hi", max_tokens="sixty")  # type: ignore[call-overload]
    ck.complete("openai:gpt-4o-mini", ["a", "b"])  # type: ignore[call-overload]
    ck.complete("openai:gpt-4o-mini", "hi", n=2)  # type: ignore[call-overload]
    ck.embed("openai:text-embedding-3-small", ["a"], dimension=256)  # type: ignore[arg-type]
    ck.predict("replicate:acme/flux", {"prompt": "x"}, harware="gpu")  # type: ignore[arg-type]
    ck.finetune("openai:gpt-4o-mini", trainingfile="t.jsonl")  # type: ignore[call-arg, arg-type]
    ck.batch("openai:gpt-4o-mini", "r.jsonl", estimate_onyl=True)  # type: ignore[arg-type]


async def wrong_async() -> None:
    await ck.acomplete("openai:gpt-4o-mini", "hi", temprature=0.1)  # type: ignore[call-overload]
    ck.astream("openai:gpt-4o-mini", "hi", max_tokens=1.5)  # type: ignore[arg-type]


def wrong_on_clients(c: ck.Client, a: ck.AsyncClient) -> None:
    """The client methods: the same typed signatures, the same errors."""
    c.complete("openai:gpt-4o-mini", "hi", n=2)  # type: ignore[call-overload]
    c.stream("openai:gpt-4o-mini", "hi", max_tokns=60)  # type: ignore[arg-type]
    c.embed("openai:text-embedding-3-small", ["a"], dimension=256)  # type: ignore[arg-type]
    c.predict("replicate:acme/flux", {"prompt": "x"}, harware="gpu")  # type: ignore[arg-type]
    a.stream("openai:gpt-4o-mini", "hi", temprature=0.1)  # type: ignore[arg-type]
    c.complete("openai:gpt-4o-mini", "hi", max_tokens=60)  # right: no error
