"""The pure core of ``finetune()``: training data checked and counted, the estimate before launch, the actual cost
after, and the job's end (failure, timeout) as typed errors. No I/O happens here except reading the caller's
training file; :mod:`computekit._finetune_client` moves the bytes, sync and async.

Token counting: OpenAI-family models are counted with tiktoken, loaded lazily. tiktoken fetches its BPE files from
a blob store on first use; computekit first looks for them offline in the ``bpe-openai`` package (which ships
``o200k_base`` and ``cl100k_base``; the bytes are checked against tiktoken's own SHA-256 before use), then lets
tiktoken load them (its cache, or the network), and only then falls back to :data:`CHARS_PER_TOKEN_ESTIMATE`
characters a token. Every estimate says in its cost line which of the three counted it.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import math
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._constants import CHARS_PER_TOKEN_ESTIMATE, MAX_USAGE_COUNT
from ._exceptions import FineTuneFailedError, FineTuneTimeoutError, InvalidRequestError, TrainingDataError
from ._http import encode_json
from ._types import Cost, CostLine, FineTuneJob, PriceSource
from .adapters._base import Adapter, FineTuneBilling, FineTuneRequest, FineTuneSpec, TrainingFile

if TYPE_CHECKING:
    from ._core import Core
    from ._targets import Target
    from .pricing import PriceBook

__all__ = [
    "BLANK_LINE",
    "Launch",
    "actual_cost",
    "count_example_tokens",
    "decode_line",
    "estimate",
    "load_training",
    "not_billable",
    "prepare",
]

_MTOK = Decimal(1_000_000)
# The estimate's token line; actual_cost() reads the count back from it when a host reports no billed quantity.
_TOKENS_ITEM = "training tokens: {tokens} x {epochs} epochs ({counted_by})"
_TOKENS_RE = re.compile(r"^training tokens: (\d+) x (\d+) epochs ")
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_MESSAGE_KEYS = frozenset({"role", "content", "name", "tool_calls", "tool_call_id", "weight", "function_call",
                           "refusal"})
_EXAMPLE_KEYS = frozenset({"messages", "tools", "functions", "parallel_tool_calls"})
_PREFERENCE_KEYS = frozenset({"input", "preferred_output", "non_preferred_output"})
# OpenAI's documented per-message framing: <|start|>{role}\n{content}<|end|>, and the reply primer per example.
_TOKENS_PER_MESSAGE = 3
_TOKENS_PER_NAME = 1
_TOKENS_PER_EXAMPLE = 3


# --------------------------------------------------------------------------------------------- token counting


class _Counter:
    """Counts the tokens of a string with one encoding (or by length, when no tokenizer is at hand)."""

    def __init__(self, encoding: str | None) -> None:
        self.enc = _encoding(encoding) if encoding else None
        if self.enc is not None:
            self.name = f"tiktoken {encoding}"
        elif encoding:
            self.name = f"about {CHARS_PER_TOKEN_ESTIMATE} characters a token (tiktoken's {encoding} not available)"
        else:
            self.name = f"about {CHARS_PER_TOKEN_ESTIMATE} characters a token (the provider's tokenizer is not public)"

    def __call__(self, text: str) -> int:
        if not text:
            return 0
        if self.enc is not None:
            return len(self.enc.encode(text, disallowed_special=()))
        return math.ceil(len(text) / CHARS_PER_TOKEN_ESTIMATE)


_enc_lock = threading.Lock()


@cache
def _encoding(name: str) -> Any:
    """A tiktoken ``Encoding``: from ``bpe-openai``'s bundled files (offline), else tiktoken's own loader; ``None``
    when neither works (tiktoken missing, or no file and no network)."""
    try:
        import tiktoken
    except ImportError:
        return None
    raw = _bundled_file(name)
    if raw is not None:
        spec = _spec_from_file(name, raw)
        if spec is not None:
            return tiktoken.Encoding(**spec)
    try:
        return tiktoken.get_encoding(name)
    except Exception:  # no cached file and no network: fall back to counting characters
        return None


def _bundled_file(name: str) -> bytes | None:
    """``name``'s BPE file from the ``bpe-openai`` wheel's data folder (read as files: the package, a large native
    extension, is not imported)."""
    try:
        found = importlib.util.find_spec("bpe_openai")
    except (ImportError, ValueError):
        return None
    if found is None or not found.origin:
        return None
    path = Path(found.origin).parent / "data" / f"{name}.tiktoken.gz"
    if not path.is_file():
        return None
    import gzip  # only for the bundled tokenizer files: not on the import path

    return gzip.decompress(path.read_bytes())


def _spec_from_file(name: str, raw: bytes) -> dict[str, Any] | None:
    """tiktoken's own constructor for ``name`` (its regex and special tokens), fed the bundled file after checking
    it against the SHA-256 tiktoken expects."""
    from tiktoken_ext import openai_public  # type: ignore[import-untyped]

    ctor = getattr(openai_public, name, None)
    if ctor is None:
        return None
    def load(_url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        if expected_hash and hashlib.sha256(raw).hexdigest() != expected_hash:
            raise ValueError(f"bundled {name} does not match tiktoken's hash")
        return {base64.b64decode(tok): int(rank) for tok, rank in (ln.split() for ln in raw.splitlines() if ln)}

    with _enc_lock:  # the loader is swapped for this one call only
        saved = openai_public.load_tiktoken_bpe
        openai_public.load_tiktoken_bpe = load
        try:
            spec: dict[str, Any] = ctor()
        except ValueError:
            return None
        finally:
            openai_public.load_tiktoken_bpe = saved
    return spec


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # content parts: their text; other parts (images) by their JSON
        return "".join(p.get("text", "") if isinstance(p, Mapping) and "text" in p else json.dumps(p)
                       for p in value)
    return json.dumps(value, separators=(",", ":"))


def _messages_tokens(messages: Sequence[Mapping[str, Any]], count: _Counter) -> int:
    n = 0
    for m in messages:
        n += _TOKENS_PER_MESSAGE
        for key, value in m.items():
            if key == "weight":
                continue
            n += count(_text(value))
            if key == "name":
                n += _TOKENS_PER_NAME
    return n


def count_example_tokens(example: Mapping[str, Any], count: Any) -> int:
    """Tokens of one training example, counted the way OpenAI's fine-tuning guide does (per message framing, every
    field's text, tools' JSON, a reply primer); a preference (DPO) example counts its input and both outputs."""
    if "messages" in example:
        n = _messages_tokens(example["messages"], count) + _TOKENS_PER_EXAMPLE
        for key in ("tools", "functions"):
            if example.get(key):
                n += count(json.dumps(example[key], separators=(",", ":")))
        return n
    inp = example.get("input") or {}
    n = _messages_tokens(inp.get("messages") or [], count) + _TOKENS_PER_EXAMPLE
    for key in ("preferred_output", "non_preferred_output"):
        n += _messages_tokens(example.get(key) or [], count)
    return n


# --------------------------------------------------------------------------------------------- training data

BLANK_LINE = object()
"""What :func:`decode_line` gives for a blank line (the trailing newline): no value."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value (a number must be finite)")


def decode_line(raw: bytes) -> Any:
    """One line of a JSONL file -> its value, :data:`BLANK_LINE`, or the ``ValueError`` that says why it has none
    (not UTF-8, not JSON, ``NaN`` or ``Infinity``, nested too deeply): returned, not raised, so the caller names
    the line."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        # Replaced, the bad bytes would be trained on (or sent) as U+FFFD: the file is refused instead.
        return ValueError(f"not UTF-8 (byte {e.start + 1} is {raw[e.start:e.start + 1]!r}): save the file as UTF-8")
    text = text.strip()
    if not text:
        return BLANK_LINE
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        return ValueError(f"not valid JSON ({e.msg} at column {e.colno})")
    except RecursionError:
        return ValueError("not valid JSON here: nested too deeply")
    except ValueError as e:
        return ValueError(f"not valid JSON ({e})")


def _refuse(source: str, line: int | None, what: str) -> TrainingDataError:
    return TrainingDataError(what, line=line, source=source)


def _check_messages(messages: Any, source: str, line: int, where: str = "messages") -> None:
    if not isinstance(messages, list) or not messages:
        raise _refuse(source, line, f'"{where}" must be a non-empty list of messages')
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            raise _refuse(source, line, f"{where}[{i}] is not an object")
        role = m.get("role")
        if role not in _ROLES:
            raise _refuse(source, line, f"{where}[{i}] has role {role!r}; use one of {', '.join(sorted(_ROLES))}")
        unknown = set(m) - _MESSAGE_KEYS
        if unknown:
            raise _refuse(source, line, f"{where}[{i}] has unknown field(s) {', '.join(sorted(unknown))}")
        content = m.get("content")
        if content is None and not (role == "assistant" and (m.get("tool_calls") or m.get("function_call"))):
            raise _refuse(source, line, f"{where}[{i}] ({role}) has no content")
        if content is not None and not isinstance(content, str | list):
            raise _refuse(source, line, f"{where}[{i}] content must be a string or a list of parts")
        if "weight" in m and m["weight"] not in (0, 1):
            raise _refuse(source, line, f"{where}[{i}] weight must be 0 or 1")


def _check_example(example: Any, method: str, source: str, line: int) -> None:
    if not isinstance(example, Mapping):
        raise _refuse(source, line, "each example must be a JSON object")
    if method == "dpo":
        missing = _PREFERENCE_KEYS - set(example)
        if missing:
            raise _refuse(source, line, f"a preference (DPO) example needs {', '.join(sorted(missing))}")
        if not isinstance(example["input"], Mapping):
            raise _refuse(source, line, '"input" must be an object with "messages"')
        _check_messages(example["input"].get("messages"), source, line, "input.messages")
        for key in ("preferred_output", "non_preferred_output"):
            _check_messages(example[key], source, line, key)
            if any(m.get("role") != "assistant" for m in example[key]):
                raise _refuse(source, line, f'"{key}" must hold assistant messages only')
        return
    if "messages" not in example:
        raise _refuse(source, line, 'each example needs "messages": [{"role": ..., "content": ...}, ...]')
    unknown = set(example) - _EXAMPLE_KEYS
    if unknown:
        raise _refuse(source, line, f"unknown field(s) {', '.join(sorted(unknown))}")
    messages = example["messages"]
    _check_messages(messages, source, line)
    if not any(m.get("role") == "assistant" for m in messages):
        raise _refuse(source, line, "no assistant message: every example needs the answer to train on")


def _read_examples(data: Any, source: str) -> Iterator[tuple[int, Any]]:
    """``(line number, example)`` of a JSONL path, read a line at a time (only the line being checked is held as
    parsed JSON), or ``(index + 1, example)`` of a list.

    Raises:
        InvalidRequestError: ``data`` is neither, or the file is missing.
        TrainingDataError: A line is not an example's JSON (not UTF-8, not JSON, ``NaN``, nested too deeply).
    """
    if isinstance(data, str | os.PathLike):
        path = Path(data)
        if not path.is_file():
            raise InvalidRequestError(f"{source}: no such file {str(path)!r}")
        with path.open("rb") as fh:
            for n, raw in enumerate(fh, 1):
                value = decode_line(raw)
                if value is BLANK_LINE:
                    continue  # blank lines (a trailing newline) carry no example
                if isinstance(value, ValueError):
                    raise _refuse(str(path), n, str(value)) from None
                yield n, value
        return
    if isinstance(data, Sequence) and not isinstance(data, bytes | bytearray):
        yield from enumerate(data, 1)
        return
    raise InvalidRequestError(
        f"{source} must be a path to a JSONL file or a list of examples, not {type(data).__name__}"
    )


def load_training(data: Any, spec: FineTuneSpec, method: str, max_example_tokens: int | None,
                  argument: str = "training_file") -> TrainingFile:
    """Read, check and count fine-tuning data (a JSONL path, or a list of example dicts).

    Raises:
        TrainingDataError: An example is wrong: the error names its line (or index) and what to fix. Nothing was
            uploaded.
        InvalidRequestError: ``data`` is neither a path nor a list (or, for a host that fetches the data itself,
            not a URL).
    """
    if spec.data == "url":
        if isinstance(data, str) and data.startswith(("https://", "http://")):
            return TrainingFile(filename=data.rsplit("/", 1)[-1], url=data, counted_by="not counted (remote file)")
        if isinstance(data, Mapping) and len(data) == 1:
            [(key, url)] = data.items()
            if isinstance(url, str) and url.startswith(("https://", "http://")):
                return TrainingFile(filename=url.rsplit("/", 1)[-1], url=url, input_key=str(key),
                                    counted_by="not counted (remote file)")
        raise InvalidRequestError(
            f"{argument}: this host's trainers fetch their data themselves: pass its https:// URL, or "
            '{"input_name": "https://..."} to name the trainer input it goes to'
        )
    is_path = isinstance(data, str | os.PathLike)
    source = str(data) if is_path else "examples"
    count = _Counter(spec.encoding)
    total = examples = 0
    # Each example is checked, counted and written out as it is read: what is held is the file to upload, not
    # every example parsed as well (several times its size).
    content = bytearray()
    for line, ex in _read_examples(data, argument):
        _check_example(ex, method, source, line)
        n = count_example_tokens(ex, count)
        if max_example_tokens is not None and n > max_example_tokens:
            raise _refuse(source, line, f"the example has {n} tokens; the model takes at most {max_example_tokens}")
        total += n
        examples += 1
        try:
            content += encode_json(ex, "the example") + b"\n"
        except InvalidRequestError as e:  # a lone surrogate; a value of another type, given as a list
            raise _refuse(source, line, str(e)) from e
    if examples < spec.min_examples:
        raise _refuse(source, None, f"{examples} example(s); the provider needs at least {spec.min_examples}")
    filename = Path(str(data)).name if is_path else f"{argument}.jsonl"
    return TrainingFile(filename=filename, content=bytes(content), examples=examples, tokens=total,
                        counted_by=count.name)


# --------------------------------------------------------------------------------------------- cost


def estimate(prices: PriceBook, adapter: Adapter, req: FineTuneRequest) -> Cost:
    """What ``req`` should cost, before anything is sent: training tokens x epochs (the provider's default when
    none are given) x the training price. Always ``estimated=True``; ``total=None`` (never 0) when a factor is
    unknown, with the reason."""
    provider, model, t = adapter.provider, req.model, req.training
    if t.url is not None:
        return Cost.unknown(f"{provider} trains on GPU time from a remote file: the cost is known when the job ends")
    priced_as = adapter.training_price_model(req)
    if priced_as is None:
        return Cost.unknown(f"{provider} bills this {req.method} job ({model}) at a rate computekit's tables do not "
                            "hold: the provider's own estimate comes at launch")
    rates = prices.training(provider, priced_as)
    if rates is None:
        return Cost.unknown(
            f'no training price known for {provider}:{model}: add [prices] "{provider}:{model}" = '
            '{ training_mtok = "..." }'
        )
    if rates.per_mtok is None:
        hourly = f" (${rates.per_hour}/hour)" if rates.per_hour is not None else ""
        return Cost.unknown(f"{provider}:{model} is billed per hour of training{hourly}: known when the job ends")
    epochs = req.epochs or adapter.default_epochs(model, t.examples)
    if epochs is None:
        return Cost.unknown(f"{provider} documents no default epochs for {model}: pass epochs=")
    tokens = Decimal(t.tokens * epochs)
    unit = rates.per_mtok / _MTOK
    line = CostLine(item=_TOKENS_ITEM.format(tokens=t.tokens, epochs=epochs, counted_by=t.counted_by),
                    quantity=tokens, unit="token", unit_price=unit, amount=tokens * unit)
    return Cost(total=line.amount, lines=[line], price_source=rates.source, estimated=True)


def with_provider_estimate(local: Cost, bill: FineTuneBilling, provider: str) -> Cost:
    """The estimate once the provider priced the job itself: its figure is the total, computekit's own line is
    kept beside it (marked not added)."""
    if bill.reported_total is None or not_billable(bill) is not None:
        return local  # a figure that cannot be a price (negative, infinite) is no estimate: computekit's own stays
    total = bill.reported_total
    lines = [CostLine(item=f"estimated by {provider} ({bill.reported_as})", quantity=Decimal(1), unit="job",
                      unit_price=total, amount=total)]
    lines += [ln.model_copy(update={"item": f"{ln.item} [computed, not added]"}) for ln in local.lines]
    return Cost(total=total, lines=lines, price_source=PriceSource(table=f"{provider} (estimate)"), estimated=True)


def not_billable(bill: FineTuneBilling) -> str | None:
    """What in ``bill`` is not a quantity a host can have billed (a negative, fractional, boolean or absurd token
    count; an amount that is negative, not finite or absurd), said plainly; ``None`` when all of it is."""
    tokens = bill.trained_tokens
    if tokens is not None and (not isinstance(tokens, int) or isinstance(tokens, bool)
                               or not 0 <= tokens <= MAX_USAGE_COUNT):
        return f"trained tokens {tokens!r}, which is not a count"
    for name, amount in (("GPU-seconds", bill.gpu_seconds), ("training hours", bill.hours),
                         ("a price", bill.reported_total)):
        if amount is None:
            continue
        try:
            fine = isinstance(amount, int | float | Decimal) and not isinstance(amount, bool) and (
                Decimal(amount).is_finite() and 0 <= amount <= MAX_USAGE_COUNT)
        except (TypeError, ValueError, ArithmeticError):
            fine = False
        if not fine:
            return f"{name} {amount!r}, which is not an amount it can have billed"
    return None


def actual_cost(prices: PriceBook, adapter: Adapter, job: FineTuneJob, hardware: str | None) -> Cost:
    """A finished job's cost from what the provider reported: its own price when it gives one (with the figure
    computed from the price tables kept beside it), else trained tokens x the training price, or GPU-seconds x
    the hardware's per-second price; ``total=None`` (never 0) when nothing billable was reported or priced, or
    when what was reported is not a quantity (a negative count would lower a budget's spend)."""
    provider = adapter.provider
    bill = adapter.finetune_billing(job)
    if (bad := not_billable(bill)) is not None:
        return Cost.unknown(f"{provider} reported {bad}: the cost of this {job.status} job is unknown")
    computed: list[CostLine] = []
    source: PriceSource | None = None
    why: list[str] = []
    if bill.trained_tokens is not None:
        rates = prices.training(provider, job.base_model)
        if rates is not None and rates.per_mtok is not None:
            q, unit = Decimal(bill.trained_tokens), rates.per_mtok / _MTOK
            computed.append(CostLine(item="trained tokens", quantity=q, unit="token", unit_price=unit,
                                     amount=q * unit))
            source = rates.source
        else:
            why.append(f'no training price known for {provider}:{job.base_model} (add [prices] "{provider}:'
                       f'{job.base_model}" = {{ training_mtok = "..." }})')
    if bill.hours is not None:
        rates = prices.training(provider, job.base_model)
        if rates is not None and rates.per_hour is not None:
            computed.append(CostLine(item="training hours", quantity=bill.hours, unit="hour",
                                     unit_price=rates.per_hour, amount=bill.hours * rates.per_hour))
            source = rates.source
        else:
            why.append(f"no hourly training price known for {provider}:{job.base_model}")
    if bill.gpu_seconds is not None:
        found = prices.per_second(provider, hardware) if hardware else None
        if found is not None and hardware:
            computed.append(CostLine(item=hardware, quantity=bill.gpu_seconds, unit="second", unit_price=found[0],
                                     amount=bill.gpu_seconds * found[0]))
            source = found[1]
        else:
            why.append(f"unknown {provider} training hardware: set [providers.{provider}] hardware = "
                       f'{{ "{job.base_model}" = "gpu-..." }}' if not hardware else
                       f"no per-second price for {provider}:{hardware}")
    if bill.reported_total is not None:
        total = bill.reported_total
        lines = [CostLine(item=f"reported by {provider} ({bill.reported_as})", quantity=Decimal(1), unit="job",
                          unit_price=total, amount=total)]
        lines += [ln.model_copy(update={"item": f"{ln.item} [computed, not added]"}) for ln in computed]
        if bill.estimated:  # the host's own estimate, not a bill: keep the launch count's figure beside it
            lines += [ln.model_copy(update={"item": f"{ln.item} [computed, not added]"})
                      for ln in _from_launch_count(prices, provider, job).lines]
            return Cost(total=total, lines=lines, price_source=PriceSource(table=f"{provider} (estimate)"),
                        estimated=True, reason=bill.estimated)
        return Cost(total=total, lines=lines, price_source=PriceSource(table=f"{provider} (reported)"))
    if computed and not why:
        return Cost(total=sum((ln.amount for ln in computed), Decimal(0)), lines=computed, price_source=source)
    if why:
        return Cost(total=None, lines=computed, reason="; ".join(why))
    if bill.estimated:
        return _from_launch_count(prices, provider, job, bill.estimated)
    return Cost.unknown(f"{provider} reported no billable quantity for this {job.status} job")


def _launch_count(job: FineTuneJob) -> tuple[int, int] | None:
    """Tokens per epoch and epochs that the launch's estimate counted (``None`` for a job attached without one)."""
    for ln in job.estimate.lines if job.estimate is not None else []:
        m = _TOKENS_RE.match(ln.item)
        if m and ln.unit == "token":
            return int(m[1]), int(m[2])
    return None


def _from_launch_count(prices: PriceBook, provider: str, job: FineTuneJob, why: str = "") -> Cost:
    """The cost of a job whose host reports no billed quantity: the tokens computekit counted at launch x the
    epochs the job reports (else those of the estimate) x the training price. Always ``estimated=True``;
    ``None`` (never 0) when the count or the price is unknown."""
    count = _launch_count(job)
    if count is None:
        return Cost.unknown(f"{why}; no launch count to price (the job was attached without its estimate)")
    tokens, est_epochs = count
    epochs = job.epochs if isinstance(job.epochs, int) and not isinstance(job.epochs, bool) and job.epochs > 0 \
        else est_epochs
    rates = prices.training(provider, job.base_model)
    if rates is None or rates.per_mtok is None:
        return Cost.unknown(f'{why}; no training price known for {provider}:{job.base_model} (add [prices] '
                            f'"{provider}:{job.base_model}" = {{ training_mtok = "..." }})')
    q, unit = Decimal(tokens * epochs), rates.per_mtok / _MTOK
    line = CostLine(item=f"training tokens counted at launch: {tokens} x {epochs} epochs (estimated)", quantity=q,
                    unit="token", unit_price=unit, amount=q * unit)
    return Cost(total=line.amount, lines=[line], price_source=rates.source, estimated=True, reason=why or None)


# --------------------------------------------------------------------------------------------- launch plan


@dataclass(slots=True)
class Launch:
    """A ``finetune()`` call, checked and estimated: what the client uploads and launches (nothing sent yet)."""

    target: Target
    request: FineTuneRequest
    estimate: Cost
    spec: FineTuneSpec

    def files(self) -> list[tuple[TrainingFile, str]]:
        """The files to upload, with their purpose."""
        out = [(self.request.training, "training")]
        if self.request.validation is not None:
            out.append((self.request.validation, "validation"))
        return out

    def dry_run(self) -> FineTuneJob:
        """The job a dry run returns: validated and estimated, nothing launched."""
        t = self.request.training
        return FineTuneJob(
            provider=self.target.provider, base_model=self.target.model, status="validating",
            estimate=self.estimate, dry_run=True, epochs=self.request.epochs,
            hyperparameters=dict(self.request.hyperparameters), training_file=t.url or t.filename,
            cost=Cost.unknown("dry run: nothing was launched"),
            metrics={"examples": t.examples, "tokens_per_epoch": t.tokens},
        )


def prepare(core: Core, model: str, training_file: Any, *, validation_file: Any = None, epochs: int | None = None,
            hyperparameters: Mapping[str, Any] | None = None, suffix: str | None = None,
            method: str = "supervised", destination: str | None = None,
            extra: Mapping[str, Any] | None = None) -> Launch:
    """Check a ``finetune()`` call and estimate it (pure: reads the training file, sends nothing).

    Raises:
        InvalidRequestError: The arguments are wrong.
        TrainingDataError: The training or validation data is refused (line and reason).
        UnsupportedCapabilityError: The provider has no fine-tuning API, or not this method.
    """
    from ._targets import split_model_id

    if not isinstance(model, str) or model in core.settings.routes:
        raise InvalidRequestError("finetune() takes one 'provider:model' (a job runs on one provider: no fallback)")
    split_model_id(model)
    [target] = core.targets(model)
    adapter = target.adapter
    if not adapter.capabilities.finetune:
        raise adapter.unsupported("finetune")
    spec = adapter.finetune_spec(target.model)
    if method not in spec.methods:
        raise adapter.unsupported(f"finetune method {method!r} (offered: {', '.join(spec.methods)})")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        raise InvalidRequestError(f"epochs must be a positive integer, not {epochs!r}")
    if hyperparameters is not None and not isinstance(hyperparameters, Mapping):
        raise InvalidRequestError("hyperparameters must be a dict")
    rates = core.prices.training(target.provider, target.model)
    limit = (rates.max_example_tokens if rates is not None else None) or spec.max_example_tokens
    training = load_training(training_file, spec, method, limit)
    validation = (load_training(validation_file, spec, method, limit, "validation_file")
                  if validation_file is not None else None)
    req = FineTuneRequest(model=target.model, training=training, validation=validation, epochs=epochs,
                          hyperparameters=dict(hyperparameters or {}), suffix=suffix, method=method,
                          destination=destination, extra=dict(extra or {}))
    adapter.check_finetune(req)
    cost = estimate(core.prices, adapter, req)
    if cost.total is None and req.training.url is not None:
        cost = _gpu_time_bound(core, target) or cost
    return Launch(target, req, cost, spec)


def _gpu_time_bound(core: Core, target: Target) -> Cost | None:
    """For a trainer billed by GPU time (Replicate): nothing predicts the run time from the data, but a configured
    ``[providers.NAME] max_seconds`` bounds it; that bound x the hardware's per-second price is the estimate (a
    ceiling, marked estimated), which is also what a budget reserves. ``None`` without both."""
    conf = core.settings.providers.get(target.provider)
    max_s = conf.max_seconds if conf is not None else None
    hardware, _ = core.hardware(target, None)
    found = core.prices.per_second(target.provider, hardware) if hardware and max_s else None
    if found is None or max_s is None or hardware is None:
        return None
    seconds = Decimal(str(max_s))
    line = CostLine(item=f"{hardware}, at most {seconds} s ([providers.{target.provider}] max_seconds)",
                    quantity=seconds, unit="second", unit_price=found[0], amount=seconds * found[0])
    return Cost(total=line.amount, lines=[line], price_source=found[1], estimated=True)


# --------------------------------------------------------------------------------------------- endings


def failed(job: FineTuneJob) -> FineTuneFailedError:
    """The error for a job that ended ``failed``: the provider's error object is its body."""
    err_obj = job.error
    message = err_obj.get("message") if isinstance(err_obj, Mapping) else err_obj
    err = FineTuneFailedError(
        f"fine-tuning job {job.id} failed: {message or 'no reason given'}",
        provider=job.provider, model=job.base_model, body=err_obj, request_id=job.id,
    )
    err.job = job
    return err


def timed_out(job: FineTuneJob, timeout: float | None) -> FineTuneTimeoutError:
    """The error for ``wait(timeout=)`` passing before the job ended (the job keeps running)."""
    err = FineTuneTimeoutError(
        f"fine-tuning job {job.id} did not end in {timeout} s (status {job.status}); it is still running: "
        "call job.wait() again later, or job.cancel()",
        provider=job.provider, model=job.base_model, request_id=job.id,
    )
    err.job = job
    return err


class Progress:
    """A progress line for ``wait(progress=True)``: status, step and the latest metrics, redrawn in place with rich
    on a terminal; nothing at all when stderr is not a terminal."""

    def __init__(self, job: FineTuneJob, console: Any = None) -> None:
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.live: Any = None
        if not self.console.is_terminal:
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.live = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                             TimeElapsedColumn(), console=self.console, transient=False)
        self.task = self.live.add_task(f"{job.provider} {job.id}", total=None, info=job.status)
        self.live.start()

    @property
    def shown(self) -> bool:
        """Whether a bar is drawn (only then are events fetched for their metrics)."""
        return self.live is not None

    def update(self, job: FineTuneJob) -> None:
        if self.live is None:
            return
        m = job.metrics
        step, total = m.get("step"), m.get("total_steps")
        shown = {k: v for k, v in m.items() if k not in ("step", "total_steps")}
        info = job.status + "".join(f"  {k}={_fmt(v)}" for k, v in list(shown.items())[:4])
        if isinstance(step, int | float) and isinstance(total, int | float) and total:
            self.live.update(self.task, completed=step, total=total, info=info)
        else:
            self.live.update(self.task, info=info)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def latest_metrics(events: Sequence[Any]) -> dict[str, Any]:
    """The data of the newest metrics event (OpenAI reports step, loss and accuracy as ``metrics`` events)."""
    for ev in reversed(list(events)):
        if ev.type == "metrics" and ev.data:
            return dict(ev.data)
    return {}
