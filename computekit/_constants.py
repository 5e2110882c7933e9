"""Named defaults and the "not given" sentinel.

Every default the SDK applies lives here, so that a reader (and the configuration reference) can find it in
one place, and so that "the caller did not pass this" is never confused with "the caller passed None".
"""

from __future__ import annotations

import enum
from typing import Final, Literal, TypeAlias


class _NotGiven(enum.Enum):
    """Marks an argument the caller did not pass (distinct from an explicit ``None``)."""

    NOT_GIVEN = enum.auto()

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __bool__(self) -> Literal[False]:
        return False


NOT_GIVEN: Final = _NotGiven.NOT_GIVEN
NotGiven: TypeAlias = Literal[_NotGiven.NOT_GIVEN]

DEFAULT_MAX_RETRIES: Final = 2
"""Retries of one request on one target, after the first try (so 3 tries in all)."""

DEFAULT_TIMEOUT_S: Final = 600.0
"""Read timeout for one HTTP exchange; generation can be slow, so this matches the vendor SDKs."""

DEFAULT_CONNECT_TIMEOUT_S: Final = 5.0
"""Connect timeout: a host that does not accept a connection in 5 s is down for our purposes."""

DEFAULT_BACKOFF_INITIAL_S: Final = 0.5
DEFAULT_BACKOFF_MAX_S: Final = 8.0
DEFAULT_RETRY_AFTER_CAP_S: Final = 60.0
"""A server may ask us to wait longer than this; we do not sleep that long inside one call."""

DEFAULT_COOLDOWN_S: Final = 30.0
"""How long a target that keeps failing (or refuses the key) is skipped by routing."""
DEFAULT_FAILURE_WINDOW_S: Final = 60.0
DEFAULT_FAILURES_TO_COOL: Final = 3
"""Failed calls (after their retries) within the window that cool a target down."""

DEFAULT_POLL_INTERVAL_S: Final = 0.5
"""First pause between polls of a running prediction; it grows by half each poll up to the maximum."""
MAX_POLL_INTERVAL_S: Final = 5.0

DEFAULT_FINETUNE_POLL_INTERVAL_S: Final = 5.0
"""First pause between polls of a fine-tuning job (jobs take minutes to hours); it grows by half each poll."""
MAX_FINETUNE_POLL_INTERVAL_S: Final = 60.0
DEFAULT_FINETUNE_EVENTS: Final = 20
"""Events ``FineTuneJob.events()`` returns when no ``limit`` is given."""
DEFAULT_BATCH_POLL_INTERVAL_S: Final = 10.0
"""First pause between polls of a batch (batches take minutes to a day); it grows by half each poll."""
MAX_BATCH_POLL_INTERVAL_S: Final = 300.0
BATCH_RESERVATION_TTL_S: Final = 2 * 86_400.0
"""How long a batch's reservation counts before its results are read: the providers' 24-hour window and a day to
read the results. Settled item by item as ``results()`` reads them, in whichever process reads them (it is held
in the ledger under the batch's key), the rest released when all are read; one never read lapses after this
long."""
CHARS_PER_TOKEN_ESTIMATE: Final = 4
"""Training tokens are estimated at four characters a token when no tokenizer for the model is available offline
(OpenAI's rule of thumb for English text); such estimates say so in their cost line."""

DEFAULT_MAX_CONNECTIONS: Final = 1000
DEFAULT_MAX_KEEPALIVE: Final = 100

MAX_SSE_EVENT_BYTES: Final = 4 * 1024 * 1024
"""An SSE event larger than this is a broken or hostile server: refuse it instead of buffering forever."""

MAX_COMPLETE_BYTES: Final = 64 * 1024 * 1024
"""The largest decoded ``complete()`` answer accepted (64 MiB: room for images returned inline)."""
MAX_EMBED_BYTES: Final = 256 * 1024 * 1024
"""The largest decoded ``embed()`` answer (256 MiB: 2048 inputs of 3072 floats written as JSON text)."""
MAX_RERANK_BYTES: Final = 16 * 1024 * 1024
"""The largest decoded ``rerank()`` answer (16 MiB)."""
MAX_PREDICT_BYTES: Final = 64 * 1024 * 1024
"""The largest decoded answer of ``predict()`` and its polls, cancels and lookups (64 MiB; output files are
fetched by ``save()``, bounded by ``MAX_DOWNLOAD_BYTES``)."""
MAX_RESPONSE_BYTES: Final = 64 * 1024 * 1024
"""The largest decoded body of any other answer (fine-tuning, files ...)."""

MAX_USAGE_COUNT: Final = 10_000_000_000
"""The largest usage count a provider may report for one call (tokens of any kind, images, requests, billed
units, GPU-seconds): ten billion, a thousand times the largest context window any model has and more than any
fine-tuning job trains on. A report beyond it, a negative or a fractional count is a malformed response: it
would otherwise price as a huge (or negative) cost, or overflow the ledger's integer columns."""
MAX_DOWNLOAD_BYTES: Final = 512 * 1024 * 1024
"""``Prediction.save()`` refuses an output file larger than this (512 MiB) instead of filling memory and disk."""
MAX_DOWNLOAD_REDIRECTS: Final = 5
"""Redirects an output download follows (a CDN may redirect; the download carries no credential)."""

WEBHOOK_TOLERANCE_S: Final = 300
"""How far a webhook's timestamp may be from the clock before it is refused as a replay (5 minutes)."""

DEFAULT_BUDGET_NAME: Final = "default"
"""The name of the budget written as ``[budget]`` (``[budgets.NAME]`` names the others)."""
RESERVATION_TTL_S: Final = 3600.0
"""How long a budget reservation counts when it is never settled (its process died mid-call): an hour."""
FINETUNE_RESERVATION_TTL_S: Final = 86_400.0
"""How long a fine-tuning job's reservation (its estimate) counts before the job's cost is recorded: a day. It is
held in the ledger under the job's key and settled by the job's row, in whichever client or process (``attach``)
records the job's end."""
RUNS_KEPT: Final = 10_000
"""Runs not yet seen ending (predictions, background responses) a client keeps in memory, with their reservations
and the attempts they are recorded with: past it, the oldest is forgotten (its reservation lapses at its time to
live, and a run never looked at again, as under webhooks, is never recorded here anyway). Bounds the memory of a
long-running process that starts runs and is told of their end by webhooks, never by a look."""
TARGETS_KEPT: Final = 10_000
"""Targets (``provider:model``) whose routing state (cooldown, recent failures, observed latency) a client keeps:
past it, the oldest not cooling down is forgotten. Bounds the memory of a long-running process that passes on
whatever model its users name."""
MODELS_KEPT: Final = 1_000
"""Models whose published facts (input schema, hardware) a client keeps once looked up: past it, the oldest is
forgotten, and looked up again if asked for. A schema can weigh tens of kilobytes."""
BACKGROUND_RESERVATION_TTL_S: Final = 21_600.0
"""How long a background response's reservation (its worst case) counts before its end is recorded: six hours
(deep-research and pro models run for minutes to an hour or more). It is held in the
ledger under the response's key and settled by its row, in whichever client or process
(``client.responses.retrieve``) sees the response end."""
DEFAULT_BACKGROUND_POLL_INTERVAL_S: Final = 1.0
"""The first pause between polls of a background response (growing to ``MAX_BACKGROUND_POLL_INTERVAL_S``)."""
MAX_BACKGROUND_POLL_INTERVAL_S: Final = 10.0
LEDGER_QUEUE_MAX: Final = 10_000
"""Rows the background ledger writer holds before ``record()`` waits for it (memory stays bounded)."""
LEDGER_BATCH_MAX: Final = 500
"""Rows the background ledger writer commits in one transaction at most."""
LEDGER_FLUSH_INTERVAL_S: Final = 0.1
"""The background ledger writer commits each row within this long of its ``record()`` (``ledger.flush_interval``),
while the disk keeps up: a process killed with SIGKILL or ended by ``os._exit()`` loses at most the rows of its
last flush interval. Reads, ``flush()``, ``close()``, exit and SIGTERM do not wait for it."""
LEDGER_READ_CHUNK: Final = 2_000
"""Rows a ledger reads from its store at a time when they are iterated (``Ledger.iter_rows``, the calls view's
exports): the memory a read holds stays this many rows, however many the period has."""
CALLS_TABLE_MAX: Final = 1_000
"""The most attempts ``computekit report --calls`` prints as a table (the first ones of the period; the footer
and the total count them all): ``--format csv`` and ``--format json`` list every one."""
LEDGER_EXIT_FLUSH_TIMEOUT_S: Final = 5.0
"""The longest the SIGTERM handler waits for queued ledger rows to be written before the process goes on to end
(a container's stop grants 10 s or more before SIGKILL)."""

CONFIG_ENV: Final = "COMPUTEKIT_CONFIG"
LEDGER_ENV: Final = "COMPUTEKIT_LEDGER"
CONFIG_FILENAME: Final = "computekit.toml"
CURRENCY: Final = "USD"
