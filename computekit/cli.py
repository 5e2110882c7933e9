"""The ``computekit`` command.

::

    computekit complete openai:gpt-4o-mini "Write a haiku about GPUs" [--stream] [--json]
    computekit providers [--json]           every adapter, its capabilities, key env vars and whether it is set up
    computekit prices openai:gpt-4o-mini    the per-1M-token rates that apply today, and their source
    computekit predict replicate:owner/name -i prompt=... [--no-wait] [--save DIR]
    computekit report --by model            spend from the ledger (table, csv or json; --calls, --plot, --html)
    computekit budgets                      each budget: limit, spent, reserved, remaining in its period
    computekit finetune estimate|create|status|events|cancel|wait    fine-tuning jobs, with their cost
    computekit batch submit|status|wait|results|cancel    batches at the batch price: estimate, cost, saved
    computekit demo                         offline: recorded calls, their exact costs, and a ledger report

Nothing here knows a provider: names, capabilities, key variables and URLs are all asked of the adapter registry.
A computekit error prints one red line (never a key) and exits with status 2. ``import computekit`` does not
import this module, typer or rich.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from ._constants import CALLS_TABLE_MAX
from ._exceptions import ComputeKitError

if TYPE_CHECKING:
    from rich.console import Console

    from ._budget import BudgetStatus
    from ._client import Client
    from ._core import Core
    from ._types import Attempt, Completion, Cost, Embeddings
    from .ledger import Calls, Ledger, Report
    from .pricing import TokenRates

__all__ = ["app", "main"]

app = typer.Typer(
    name="computekit",
    help="Call hosted ML compute through one interface, and know what every call cost.",
    no_args_is_help=True,
    add_completion=False,
    # A crash must never print local variables: they can hold settings with keys.
    pretty_exceptions_show_locals=False,
    # Help text is plain text: with Rich markup on, "computekit[plot]" loses its "[plot]".
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"computekit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_show_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Call hosted ML compute through one interface, and know what every call cost."""

EXIT_ERROR = 2
"""Exit status for a computekit error (bad config, missing key, provider failure)."""
EXIT_UNKNOWN = 1
"""Exit status of ``prices`` when no price is known."""

_MTOK = Decimal(1_000_000)
_MONEY_CELL = re.compile(r"\$(\d[\d,]*)\.(\d+)")
_PIPE_WIDTH = 132
_UNBOUNDED = 10_000
_SECRET_ENV = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)", re.IGNORECASE)
_RATE_NAMES = {
    "input_mtok": "input",
    "cache_read_mtok": "cached input",
    "cache_write_mtok": "cache write",
    "output_mtok": "output",
    "input_audio_mtok": "input audio",
    "output_audio_mtok": "output audio",
    "output_reasoning_mtok": "reasoning",
}

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="A computekit.toml (default: $COMPUTEKIT_CONFIG, else ./computekit.toml)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
LedgerOption = Annotated[
    str | None,
    typer.Option("--ledger", help="The ledger to read: sqlite:///path, a path, or postgresql://... "
                                  "(default: the configured one)."),
]


# --------------------------------------------------------------------------------------------- output helpers


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = _PIPE_WIDTH  # piped or captured: no terminal to fit, so do not squeeze tables to 80
    return console


_extra_secrets: list[str] = []


def _redact(text: str) -> str:
    """Hide any key value that found its way into ``text`` (env keys and keys from the loaded config)."""
    secrets = [v for k, v in os.environ.items() if _SECRET_ENV.search(k) and len(v) >= 8]
    secrets += [s for s in _extra_secrets if len(s) >= 8]
    for s in sorted(set(secrets), key=len, reverse=True):
        text = text.replace(s, "****")
    return text


def _remember_keys(core: Core) -> None:
    for conf in core.settings.providers.values():
        if conf.api_key is not None:
            _extra_secrets.append(conf.api_key.get_secret_value())


def _fail(message: str) -> NoReturn:
    """Print one red line on stderr and exit with status 2."""
    from rich.markup import escape

    line = " ".join(_redact(message).split())
    _console(stderr=True).print(f"[bold red]error:[/] [red]{escape(line)}[/]")
    raise typer.Exit(EXIT_ERROR)


@contextmanager
def _errors() -> Iterator[None]:
    """Turn a computekit error into one red line and exit status 2 (no traceback)."""
    try:
        with warnings.catch_warnings():
            from .pricing import UnknownPriceWarning

            # An unknown price is shown in the cost line, with how to add one; no Python warning on top.
            warnings.simplefilter("ignore", UnknownPriceWarning)
            yield
    except ComputeKitError as e:
        _fail(f"{type(e).__name__}: {e}")


def _money(d: Decimal) -> str:
    """An exact decimal, without trailing zeros beyond the cents: ``0.0000021``, ``1.50``."""
    s = format(d, "f")
    if "." in s:
        whole, frac = s.split(".")
        frac = frac.rstrip("0")
        s = f"{whole}.{frac.ljust(2, '0')}"
    else:
        s += ".00"
    return "$" + s


def _aligned(cells: list[str]) -> list[str]:
    """Money cells of one column with as many decimals each (trailing zeros: the values stay exact), so that,
    right-justified, their decimal points line up."""
    found = [_MONEY_CELL.search(c) for c in cells]
    width = max((len(m.group(2)) for m in found if m), default=0)
    return [c if m is None else c[: m.start(2)] + m.group(2).ljust(width, "0") + c[m.end(2):]
            for c, m in zip(cells, found, strict=True)]


def _print_table(console: Console, table: Any) -> None:
    """Print a table; off a terminal as wide as it needs, so that no value (money above all) is ever cut."""
    if not console.is_terminal:
        need = console.measure(table, options=console.options.update_width(_UNBOUNDED)).maximum
        if need > console.width:
            width, console.width = console.width, need  # print(width=) cannot go beyond the console's width
            try:
                console.print(table)
            finally:
                console.width = width
            return
    console.print(table)


def _per_mtok(rate: Decimal) -> str:
    return f"{_money(rate)}/1M tokens"


def cost_lines(cost: Cost | None, *, target: str | None = None) -> list[str]:
    """A cost as text: the total (or why it is unknown), one line per charge, and the price source."""
    if cost is None:
        return ["cost: unknown (not reported)"]
    if cost.total is None:
        out = [f"cost: unpriced — {cost.reason or 'no price known'} (cost is None, not $0)"]
        if target:
            out.append(f'  add a price in computekit.toml: [prices] "{target}" = '
                       '{ input_mtok = "...", output_mtok = "..." }')
        return out
    head = f"cost: {_money(cost.total)} {cost.currency}" + (" (estimated)" if cost.estimated else "")
    if cost.reason and not cost.lines:
        head += f" — {cost.reason}"
    out = [head]
    for line in cost.lines:
        q = format(line.quantity.normalize(), "f") if line.quantity == line.quantity.to_integral() else str(
            line.quantity
        )
        if line.unit == "token":
            price = _per_mtok(line.unit_price * _MTOK)
            unit = "token " if line.quantity == 1 else "tokens"
            out.append(f"  {line.item:<12} {q:>8} {unit} x {price} = {_money(line.amount)}")
        else:
            out.append(f"  {line.item:<12} {q:>8} {line.unit} x {_money(line.unit_price)} = {_money(line.amount)}")
    if cost.price_source is not None:
        src = str(cost.price_source)
        if cost.price_source.url:
            src += f" — {cost.price_source.url}"
        out.append(f"  price source: {src}")
    return out


def _print_cost(console: Console, cost: Cost | None, *, target: str | None = None) -> None:
    from rich.text import Text

    for i, line in enumerate(cost_lines(cost, target=target)):
        unpriced = cost is not None and cost.total is None
        style = ("bold yellow" if unpriced else "bold green") if i == 0 else "dim"
        console.print(Text(line, style=style))


def _unpriced_key(result: Completion | Embeddings) -> str:
    """The ``[prices]`` key that would price ``result`` (the model id the provider reported)."""
    raw_model = result.raw.get("model") if isinstance(result.raw, dict) else None
    return f"{result.provider}:{raw_model or result.model}"


def _client(config: Path | None) -> Client:
    from ._client import Client

    client = Client(config) if config is not None else Client()
    _remember_keys(client._core)
    return client


def _core(config: Path | None) -> Core:
    from ._core import Core

    core = Core(config) if config is not None else Core()
    _remember_keys(core)
    return core


# --------------------------------------------------------------------------------------------- complete


@app.command()
def complete(
    model: Annotated[str, typer.Argument(help="provider:model, a route name from the config.")],
    prompt: Annotated[str, typer.Argument(help="The prompt, sent as one user message; - reads it from stdin.")],
    system: Annotated[str | None, typer.Option("--system", "-s", help="A system message sent first.")] = None,
    temperature: Annotated[float | None, typer.Option("--temperature", "-t", min=0,
                                                     help="Sampling temperature.")] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", "-m", min=1,
                                                   help="Upper bound on output tokens.")] = None,
    stream: Annotated[bool, typer.Option("--stream", help="Print the text as it arrives.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the whole Completion as JSON.")] = False,
    config: ConfigOption = None,
) -> None:
    """Generate a completion and print it, then what it cost.

    echo "Summarise this" | computekit complete openai:gpt-4o-mini - --system "Be brief" --max-tokens 60
    """
    from ._constants import NOT_GIVEN

    if prompt == "-":
        prompt = sys.stdin.read()
        if not prompt.strip():
            _fail("the prompt read from stdin is empty")
    args: dict[str, Any] = {
        "messages": [{"role": "system", "content": system}] if system is not None else NOT_GIVEN,
        "max_tokens": max_tokens if max_tokens is not None else NOT_GIVEN,
        "temperature": temperature if temperature is not None else NOT_GIVEN,
    }
    with _errors():
        client = _client(config)
        try:
            if stream:
                with client.stream(model, prompt, **args) as s:
                    for chunk in s:
                        if chunk.text and not json_out:
                            sys.stdout.write(chunk.text)
                            sys.stdout.flush()
                    result = s.result
                if not json_out:
                    sys.stdout.write("\n")
            else:
                result = client.complete(model, prompt, **args)
                if not json_out:
                    typer.echo(result.text)
        finally:
            client.close()
    if json_out:
        typer.echo(result.model_dump_json(exclude={"raw"}, indent=2))
        return
    console = _console()
    for call in result.tool_calls:
        console.print(f"tool call: {call.name}({call.arguments})", markup=False)
    _print_attempts(console, result.attempts)
    _print_cost(console, result.cost, target=_unpriced_key(result))


def _stdout_is_terminal() -> bool:
    """Whether a person is watching: the progress line is drawn only then (on stderr; stdout keeps the output)."""
    return sys.stdout.isatty()


def _parse_inputs(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs -> a dict; values are JSON when they parse (numbers, booleans, lists), else text."""
    import json

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r}: write -i key=value")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


@app.command()
def predict(
    model: Annotated[str, typer.Argument(help="provider:model, e.g. replicate:black-forest-labs/flux-schnell.")],
    inputs: Annotated[list[str] | None, typer.Option("--input", "-i", help="An input, key=value (repeat).")] = None,
    hardware: Annotated[str | None, typer.Option("--hardware", help="The hardware SKU (prices the run).")] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Start the run and return at once.")] = False,
    timeout: Annotated[float | None, typer.Option("--timeout", min=0, help="Seconds to wait (then cancel).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the whole Prediction as JSON.")] = False,
    save: Annotated[Path | None, typer.Option("--save", help="Download the output files into this directory.",
                                              file_okay=False)] = None,
    allow_private_network: Annotated[bool, typer.Option(
        "--allow-private-network", help="With --save: also download from private, loopback and link-local "
        "addresses.")] = False,
    validate: Annotated[bool, typer.Option("--validate/--no-validate",
                                           help="Check the input against the model's schema first.")] = True,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress",
                                                  help="Show status while waiting (default: on a terminal).")] = None,
    config: ConfigOption = None,
) -> None:
    """Run a model on a serverless GPU host and print its output, then what it cost."""
    payload = _parse_inputs(inputs or [])
    if save is not None and no_wait:
        raise typer.BadParameter("--save needs the run's output: drop --no-wait", param_hint="--save")
    saved: list[Path] = []
    with _errors():
        client = _client(config)
        try:
            show = _stdout_is_terminal() if progress is None else progress
            p = client.predict(model, payload, wait=not no_wait, timeout=timeout, hardware=hardware,
                               validate=validate, progress=show and not no_wait)
            if save is not None:
                saved = p.save(save, allow_private_network=allow_private_network)
        finally:
            client.close()
    if json_out:
        typer.echo(p.model_dump_json(exclude={"raw"}, indent=2))
        for path in saved:  # stdout stays one JSON document
            _console(stderr=True).print(f"saved {path}", markup=False)
        return
    console = _console()
    console.print(f"{p.id}: {p.status}", markup=False)
    if p.output is not None:
        console.print(p.output if isinstance(p.output, str) else repr(p.output), markup=False)
    for path in saved:
        console.print(f"saved {path}", markup=False)
    if p.usage.gpu_seconds is not None:
        console.print(f"gpu-seconds: {p.usage.gpu_seconds} on {p.usage.hardware or 'unknown hardware'}", markup=False)
    if p.done:
        _print_cost(console, p.cost, target=None)


def _print_attempts(console: Console, attempts: list[Attempt]) -> None:
    if len(attempts) <= 1:
        return
    from rich.text import Text

    console.print(Text(f"attempts: {len(attempts)}", style="bold"))
    for i, a in enumerate(attempts, 1):
        if a.outcome == "success":
            what = "success"
        else:
            what = f"{a.error_type or 'error'}" + (f" {a.status}" if a.status is not None else "")
        cost = "unpriced" if a.cost is None or a.cost.total is None else _money(a.cost.total)
        note = f" ({a.cost.reason})" if a.cost is not None and a.cost.reason and a.outcome != "success" else ""
        console.print(Text(f"  {i}. {a.target}: {what}, cost {cost}{note}", style="dim"))


# --------------------------------------------------------------------------------------------- providers


def _provider_row(core: Core, name: str) -> dict[str, Any]:
    from .adapters import adapter_class

    conf = core.settings.providers.get(name)
    row: dict[str, Any] = {"name": name}
    try:
        cls = adapter_class(conf.adapter if conf and conf.adapter else name)
    except (ComputeKitError, ImportError, AttributeError) as e:
        return {**row, "adapter": None, "capabilities": [], "key_env_vars": [], "base_url": None,
                "requires_key": None, "configured": False, "status": f"broken: {_redact(str(e))}"}
    _, env_vars, requires_key = cls.defaults_for(name)
    if conf and conf.api_key_env:
        env_vars = (conf.api_key_env,)
    row.update(adapter=cls.name, capabilities=cls.capabilities_for(name).names(), key_env_vars=list(env_vars),
               requires_key=requires_key, docs_url=cls.docs_url, pricing=cls.pricing_for(name))
    try:
        _, ps = core.provider_settings(name)
    except ComputeKitError:
        return {**row, "base_url": None, "configured": False, "status": f"no: set providers.{name}.base_url"}
    from ._config import masked_url

    row["base_url"] = masked_url(ps.base_url)  # a key in its query, a password in its user info: never printed
    if ps.api_key is not None:
        found = next((v for v in env_vars if os.environ.get(v)), None)
        where = "api_key in config" if conf and conf.api_key else f"key from ${found}" if found else "key set"
        return {**row, "configured": True, "status": f"yes ({where})"}
    if not requires_key:
        return {**row, "configured": True, "status": "yes (no key needed)"}
    need = " or ".join(f"${v}" for v in env_vars) or f"providers.{name}.api_key"
    return {**row, "configured": False, "status": f"no: set {need}"}


@app.command()
def providers(
    json_out: JsonOption = False,
    config: ConfigOption = None,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the built-in providers as the docs' Markdown table.")
    ] = False,
) -> None:
    """Every provider computekit can call: capabilities, key variables, base URL, and whether it is set up."""
    from .adapters._registry import providers as offered

    if markdown:
        typer.echo(providers_markdown(), nl=False)
        return
    with _errors():
        core = _core(config)
        names = sorted({*offered(), *core.settings.providers})
        rows = [_provider_row(core, n) for n in names]
    if json_out:
        import json

        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table(title="computekit providers", title_justify="left")
    table.add_column("provider", no_wrap=True, style="bold")
    table.add_column("adapter", no_wrap=True)
    table.add_column("capabilities", min_width=24)
    table.add_column("key env var(s)", no_wrap=True)
    table.add_column("base URL", overflow="fold")
    table.add_column("configured", min_width=20, overflow="fold")
    for r in rows:
        configured = r["status"]
        style = "green" if r["configured"] else "yellow"
        table.add_row(
            r["name"], r["adapter"] or "?", ", ".join(r["capabilities"]) or "—",
            "\n".join(r["key_env_vars"]) or "—",
            r["base_url"] or "—", f"[{style}]{_escape(configured)}[/]",
        )
    _print_table(_console(), table)


def providers_markdown() -> str:
    """The built-in (and installed plugin) providers as a Markdown table, from the registry alone: what each
    adapter says of itself, independent of config and keys. ``docs/providers/index.md`` holds this table, and
    a test keeps the two equal."""
    from .adapters import adapter_class
    from .adapters._registry import providers as offered

    lines = [
        "| provider | adapter | capabilities | key env var(s) | default base URL | prices from |",
        "|---|---|---|---|---|---|",
    ]
    for name in offered():
        cls = adapter_class(name)
        url, env_vars, requires_key = cls.defaults_for(name)
        keys = ", ".join(f"`{v}`" for v in env_vars) or ("none needed" if not requires_key else "`api_key`")
        caps = ", ".join(cls.capabilities_for(name).names())
        lines.append(
            f"| `{name}` | {cls.name} | {caps} | {keys} | {f'`{url}`' if url else 'set `base_url`'} | "
            f"{cls.pricing_for(name)} |"
        )
    return "\n".join(lines) + "\n"


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
"""C0 and C1 control characters (ESC, CSI, BEL, CR ...)."""


def _escape(text: str) -> str:
    """``text`` (a tag, a model id: anything a user or a provider chose) to print: rich markup escaped, and control
    characters shown as ``\\x1b`` ..., so that an escape sequence in it cannot clear, retitle or recolor the
    terminal."""
    from rich.markup import escape

    return escape(_CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text))


# --------------------------------------------------------------------------------------------- prices


def _rates_json(rates: TokenRates, total_input: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in rates.prices:
        value = rates.rate(key, total_input)
        out[key] = None if value is None else str(value)
    return out


@app.command()
def prices(
    model: Annotated[str, typer.Argument(help="provider:model, e.g. openai:gpt-4o-mini.")],
    json_out: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """The per-1M-token rates that apply to MODEL today, and where they come from (exit 1 when unknown)."""
    from ._targets import split_model_id
    from .adapters import ProviderSettings, adapter_class

    with _errors():
        core = _core(config)
        provider, name = split_model_id(model)
        conf = core.settings.providers.get(provider)
        cls = adapter_class(conf.adapter if conf and conf.adapter else provider)
        # Pricing needs no key or URL: an adapter built without them still says what to look up.
        adapter = cls(ProviderSettings(name=provider, base_url="", api_key=None, timeout=core.settings.timeout))
        ref = adapter.price_ref(name)
        rates = core.prices.rates(ref)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    if rates is None:
        self_hosted = not ref.metered
        if json_out:
            import json

            typer.echo(json.dumps({"model": model, "date": today, "known": self_hosted, "self_hosted": self_hosted,
                                   "rates": {}, "source": None,
                                   "did_you_mean": [f"{provider}:{m}" for m in core.prices.similar(ref)]},
                                  indent=2))
        elif self_hosted:
            typer.echo(f"{model}: self-hosted server, no per-call charge (a [prices] entry in the config applies)")
        elif close := core.prices.similar(ref):
            # Most likely a typo: point at the model meant, not at adding a price for one that does not exist.
            console = _console()
            console.print(f"[bold yellow]no model {_escape(model)} in the price tables[/]: did you mean "
                          + " or ".join(f"[bold]{_escape(provider)}:{_escape(m)}[/]" for m in close) + "?")
            console.print(f"(check it with: computekit prices {provider}:{close[0]})", markup=False)
        else:
            console = _console()
            console.print(f"[bold yellow]no price known for {_escape(model)}[/] on {today}.")
            console.print("Its calls get cost None (unpriced), never $0. Add its price to computekit.toml:",
                          markup=False)
            console.print(f'\n  [prices]\n  "{model}" = {{ input_mtok = "0.50", output_mtok = "1.50" }}   '
                          "# USD per 1M tokens\n", markup=False)
        if not self_hosted:
            raise typer.Exit(EXIT_UNKNOWN)
        return
    if json_out:
        import json

        typer.echo(json.dumps({
            "model": model, "date": today, "known": True, "self_hosted": False,
            "rates": _rates_json(rates),
            "tiers": {k: [[start, str(p)] for start, p in v.tiers] for k, v in rates.prices.items()
                      if not isinstance(v, Decimal)},
            "per_request": None if rates.per_request is None else str(rates.per_request),
            "extra_units": {k: {"price": str(p), "per": per} for k, (p, per) in rates.extra_units.items()},
            "source": rates.source.model_dump(mode="json"),
        }, indent=2))
        return
    from rich.table import Table

    table = Table(title=f"{model} — rates on {today} (USD)", title_justify="left")
    table.add_column("charge", no_wrap=True)
    table.add_column("price", justify="right", no_wrap=True)
    for key, value in rates.prices.items():
        label = _RATE_NAMES.get(key, key)
        if isinstance(value, Decimal):
            table.add_row(label, _per_mtok(value))
        else:
            tiers = "; ".join(f"above {start:,} input tokens: {_per_mtok(p)}" for start, p in value.tiers)
            table.add_row(label, f"{_per_mtok(value.base)} ({tiers})")
    if rates.per_request is not None:
        table.add_row("request", f"{_money(rates.per_request)}/request")
    for unit, (price, per) in rates.extra_units.items():
        table.add_row(unit.replace("_", " "), f"{_money(price)} per {per:,}")
    console = _console()
    _print_table(console, table)
    src = rates.source
    console.print(f"source: {src}" + (f" — {src.url}" if src.url else ""), markup=False)


# --------------------------------------------------------------------------------------------- report


class FormatChoice(StrEnum):
    """How ``report`` prints."""

    table = "table"
    csv = "csv"
    json = "json"


def _when(value: str | None, option: str, *, end: bool) -> dt.datetime | None:
    """``YYYY-MM-DD`` or an ISO datetime -> an aware UTC datetime (a bare ``--until`` date includes that day)."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            when = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
            return when + dt.timedelta(days=1) if end else when
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        _fail(f"{option}: {value!r} is not a date (YYYY-MM-DD) or an ISO datetime")
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


def print_report(console: Console, report: Report, *, title: str) -> None:
    """A ledger report as a table, with the exact total."""
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_footer=True)
    rows = report.rows
    table.add_column(report.group_by, footer="TOTAL", no_wrap=True)
    table.add_column("calls", justify="right", footer=str(sum(r.calls for r in rows)))
    table.add_column("errors", justify="right", footer=str(sum(r.errors for r in rows)))
    table.add_column("input tok", justify="right", footer=f"{sum(r.input_tokens for r in rows):,}")
    table.add_column("output tok", justify="right", footer=f"{sum(r.output_tokens for r in rows):,}")
    # A group with unpriced calls costs at least its priced part: never show it as a plain $0.
    costs = _aligned([_money(r.cost) if not r.unpriced else f"≥ {_money(r.cost)}" if r.cost else "unpriced"
                      for r in rows] + [_money(report.total) if not report.unpriced else f"≥ {_money(report.total)}"])
    table.add_column("cost (USD)", justify="right", footer=costs[-1], no_wrap=True,
                     min_width=max(len(c) for c in costs))
    table.add_column("unpriced", justify="right", footer=str(report.unpriced))
    for r, cost in zip(rows, costs, strict=False):
        table.add_row(_escape(r.key), str(r.calls), str(r.errors), f"{r.input_tokens:,}", f"{r.output_tokens:,}",
                      cost, str(r.unpriced) if r.unpriced else "")
    _print_table(console, table)
    line = f"total: {_money(report.total)} USD"
    if report.unpriced:
        line += (f" + {report.unpriced} unpriced call{'s' if report.unpriced != 1 else ''} not included "
                 "(the real total is higher)")
    console.print(line, markup=False, style="bold")


def print_calls(console: Console, calls: Calls, *, title: str, most: int | None = None) -> None:
    """The calls view as a table: one line per attempt, oldest first, with the exact total. A period of more than
    ``most`` attempts (default ``CALLS_TABLE_MAX``) shows its first ``most`` (a table of a million lines helps no
    one, and would be held in memory) and says so; the footer and the total still count them all (summed by the
    store)."""
    from rich.table import Table

    most = CALLS_TABLE_MAX if most is None else most
    summary = calls.report("outcome")  # count, tokens, total and unpriced of the whole period
    it = iter(calls)
    try:
        rows = list(itertools.islice(it, most))
    finally:
        close = getattr(it, "close", None)  # stop a lazy read early: its cursor and connection go now
        if close is not None:
            close()
    n = summary.calls
    table = Table(title=title, title_justify="left", show_footer=True)
    tokens_in = sum(r.input_tokens for r in summary.rows)
    tokens_out = sum(r.output_tokens for r in summary.rows)
    costs = _aligned([
        "unpriced" if r.cost is None else _money(r.cost) + (" (est.)" if r.estimated else "") for r in rows
    ] + [_money(summary.total) if not summary.unpriced else f"≥ {_money(summary.total)}"])
    total = costs[-1]
    outcomes = [r.outcome if r.outcome != "error" else
                (r.error_type or "error").removesuffix("Error") + (f" {r.status}" if r.status else "")
                for r in rows]
    table.add_column("time (UTC)", footer="TOTAL", no_wrap=True, min_width=19)
    table.add_column("verb", no_wrap=True, min_width=8)
    table.add_column("target", footer=f"{n} calls", overflow="fold")
    table.add_column("outcome", no_wrap=True, min_width=max((len(o) for o in outcomes), default=7))
    tokens = [f"{r.input_tokens:,} → {r.output_tokens:,}" for r in rows] + [f"{tokens_in:,} → {tokens_out:,}"]
    table.add_column("tokens in → out", justify="right", footer=tokens[-1], no_wrap=True,
                     min_width=max(len(t) for t in tokens))
    table.add_column("cost (USD)", justify="right", footer=total, no_wrap=True, min_width=max(len(c) for c in costs))
    table.add_column("tags", overflow="fold")  # the one column that gives way on a narrow terminal (one tag a line)
    for r, cost, outcome in zip(rows, costs, outcomes, strict=False):
        tags = " ".join(f"{k}={v}" for k, v in sorted(r.tags.items()))
        table.add_row(r.ts.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"), r.verb,
                      _escape(f"{r.provider}:{r.model}"), _escape(outcome),
                      f"{r.input_tokens:,} → {r.output_tokens:,}", cost, _escape(tags))
    _print_table(console, table)
    if n > len(rows):
        console.print(f"showing the first {len(rows):,} of {n:,} calls (oldest first): --format csv or --format "
                      "json lists them all, or narrow the period with --since/--until", markup=False, style="yellow")
    line = f"total: {_money(summary.total)} USD"
    if summary.unpriced:
        line += (f" + {summary.unpriced} unpriced call{'s' if summary.unpriced != 1 else ''} not included "
                 "(the real total is higher)")
    console.print(line, markup=False, style="bold")


def _check_plotting() -> None:
    """Fail before reading the ledger when a chart is asked for and matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401  (drawn with right after)
    except ImportError:
        _fail("--plot and --html need matplotlib: pip install 'computekit[plot]'")


def _reading_ledger(core: Core, url: str | None) -> tuple[Ledger | None, str]:
    """The ledger to read (``--ledger``, else the configured one), opened through ``open_ledger`` whatever its
    kind, unbuffered (nothing is written); ``None`` for a ledger file not created yet (reading must not create
    it). Also how to name it."""
    from .ledger import default_ledger_path, open_ledger
    from .ledger._sqlite import path_from_url

    url = url if url is not None else core.settings.ledger.url
    if url is None or "://" not in url or url.startswith("sqlite:"):
        path = default_ledger_path() if url is None else Path(path_from_url(url))
        if str(path) != ":memory:" and not path.expanduser().exists():
            return None, f"{path} (not created yet)"
    ledger = open_ledger(url)
    return ledger, repr(ledger)


@app.command()
def report(
    by: Annotated[
        str, typer.Option("--by", help="Group by provider, model, target, verb, day (UTC), outcome or tag:NAME.")
    ] = "provider",
    fmt: Annotated[FormatChoice, typer.Option("--format", "-f", help="Output format.")] = FormatChoice.table,
    since: Annotated[str | None, typer.Option(help="From this date (YYYY-MM-DD, UTC) or ISO datetime.")] = None,
    until: Annotated[
        str | None, typer.Option(help="Up to this date, included (YYYY-MM-DD, UTC), or before an ISO datetime.")
    ] = None,
    calls: Annotated[bool, typer.Option("--calls", help="List each attempt instead of groups.")] = False,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", dir_okay=False,
                     help="Also write the cost per day, stacked by provider, to this image (.png, .svg, .pdf). "
                          "Needs computekit[plot]."),
    ] = None,
    html: Annotated[
        Path | None,
        typer.Option("--html", dir_okay=False,
                     help="Also write a self-contained HTML report (the chart and the tables). "
                          "Needs computekit[plot]."),
    ] = None,
    ledger_url: LedgerOption = None,
    config: ConfigOption = None,
) -> None:
    """Spend recorded in the configured ledger, grouped (every attempt: fallbacks and failures too)."""
    from .ledger import Calls
    from .ledger._report import check_group_by

    try:
        check_group_by(by)
    except ValueError as e:
        _fail(f"--by: {e}")
    start = _when(since, "--since", end=False)
    stop = _when(until, "--until", end=True)
    if start is not None and stop is not None and start > stop:  # checked even when there is no ledger to read
        _fail(f"--since {since} is after --until {until}: swap them")
    if plot is not None or html is not None:
        _check_plotting()
    from .ledger._report import build_report

    with _errors():
        ledger, where = _reading_ledger(_core(config), ledger_url)
        if ledger is None:  # nothing recorded yet: an empty report
            _show_report(build_report([], by, since=start, until=stop), Calls([], since=start, until=stop),
                         by=by, fmt=fmt, calls=calls, plot=plot, html=html, where=where, period=bool(start or stop))
            return
        try:
            # The calls view reads the ledger as it is used (rows streamed, sums made by the store): before close.
            _show_report(ledger.report(by, since=start, until=stop), ledger.calls(since=start, until=stop),
                         by=by, fmt=fmt, calls=calls, plot=plot, html=html, where=where, period=bool(start or stop))
        finally:
            ledger.close()


def _show_report(rep: Report, view: Calls, *, by: str, fmt: FormatChoice, calls: bool, plot: Path | None,
                 html: Path | None, where: str, period: bool) -> None:
    """Write the chart and the page asked for, then print the report or the calls view. The calls' CSV and JSON
    are written as the rows are read, one at a time: memory stays bounded however many the period has."""
    if plot is not None:
        view.plot(plot)
        _console(stderr=True).print(f"wrote the cost chart to {plot}", markup=False)
    if html is not None:
        view.to_html(html, by=by)
        _console(stderr=True).print(f"wrote the HTML report to {html}", markup=False)
    if fmt is FormatChoice.csv:
        if calls:
            view.write_csv(sys.stdout)
        else:
            sys.stdout.write(rep.to_csv())
    elif fmt is FormatChoice.json:
        if calls:
            view.write_json(sys.stdout)
            sys.stdout.write("\n")  # as typer.echo ends the report's
        else:
            typer.echo(rep.to_json())
    elif not rep.rows:
        typer.echo(f"no calls recorded in {where}" + (" for that period" if period else ""))
    elif calls:
        print_calls(_console(), view, title=f"calls — {where}")
    else:
        print_report(_console(), rep, title=f"spend by {by} — {where}")


@app.command()
def budgets(
    json_out: JsonOption = False,
    ledger_url: LedgerOption = None,
    config: ConfigOption = None,
) -> None:
    """Each configured budget in its current period: limit, spent, reserved by calls in flight, what is left."""
    import json

    from ._budget import budget_status
    from ._core import now

    with _errors():
        core = _core(config)
        configured = core.settings.active_budgets()
        statuses: dict[str, BudgetStatus] = {}
        if configured:
            ledger, where = _reading_ledger(core, ledger_url)
            if ledger is None:  # nothing recorded yet: everything is left (an empty ledger, in memory)
                from .ledger import open_ledger

                ledger = open_ledger("sqlite://:memory:")
            try:
                statuses = budget_status(configured, ledger, now())
            finally:
                ledger.close()
    if json_out:
        typer.echo(json.dumps({name: st.as_dict() for name, st in statuses.items()}, indent=2))
        return
    if not statuses:
        typer.echo("no budgets configured: set [budget] limit_usd (or [budgets.NAME]) in computekit.toml")
        return
    print_budgets(_console(), list(statuses.values()), title=f"budgets — {where}")


def print_budgets(console: Console, statuses: list[BudgetStatus], *, title: str) -> None:
    """Budget statuses as a table (money exact)."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for name, justify in (("budget", "left"), ("scope", "left"), ("period", "left"), ("limit", "right"),
                          ("spent", "right"), ("reserved", "right"), ("remaining", "right"), ("used", "right")):
        wraps = name in ("scope", "period")  # the words give way on a narrow terminal, never the money
        table.add_column(name, justify=justify, no_wrap=not wraps, overflow="fold")  # type: ignore[arg-type]
    money = [_aligned([_money(getattr(st, field)) for st in statuses])
             for field in ("limit", "spent", "reserved", "remaining")]
    for i, st in enumerate(statuses):
        scope = [f"provider={st.provider}"] if st.provider else []
        scope += [f"model={st.model}"] if st.model else []
        scope += [f"{k}={v}" for k, v in sorted((st.tags or {}).items())]
        used = (st.spent + st.reserved) / st.limit * 100 if st.limit else Decimal(0)
        period = st.period if st.period == "total" else f"{st.period} from {st.period_start:%Y-%m-%d}"
        table.add_row(_escape(st.name), _escape(" ".join(scope) or "all calls"), period,
                      *(column[i] for column in money), f"{used:.1f}%")
    _print_table(console, table)


# --------------------------------------------------------------------------------------------- demo


@app.command()
def demo(
    ledger: Annotated[
        str | None,
        typer.Option(help="Also record the demo's attempts in this ledger (sqlite:///path). Default: a throwaway one."),
    ] = None,
) -> None:
    """Offline tour: recorded calls replayed through the real client, each with its exact cost, then a report.

    Needs no key and no network: the responses come from recordings shipped with computekit.
    """
    import tempfile

    from rich.rule import Rule
    from rich.text import Text

    from . import _demo

    console = _console()
    rec = _demo.load_recordings()
    console.print(Rule("computekit demo"))
    console.print(Text(
        "Responses below are REPLAYED from recordings shipped with computekit (computekit/_demo/recordings.json). "
        "They were authored from the providers' API docs, not captured live: no key is used and nothing is sent "
        "over the network. Everything else is real: requests are built, retried, parsed and priced by computekit, "
        "and every attempt is written to a ledger.",
        style="bold cyan",
    ))
    with tempfile.TemporaryDirectory(prefix="computekit-demo-") as tmp:
        url = ledger or f"sqlite:///{Path(tmp) / 'demo-ledger.db'}"
        started = dt.datetime.now(dt.UTC)
        with _errors():
            client, replayer = _demo.replay_client(url, rec)
            try:
                total = len(rec["scenarios"])
                for i, sc in enumerate(rec["scenarios"], 1):
                    _demo_scenario(console, client, replayer, sc, i, total)
                rep = client.ledger.report("target", since=started)
            finally:
                client.close()
                client.ledger.close()
                replayer.close()
        console.print()
        where = "a throwaway ledger (deleted now)" if ledger is None else ledger
        print_report(console, rep, title=f"ledger report, by target — {where}")
    console.print(Text("(replayed from computekit's shipped recordings; prices from today's tables)", style="dim"))


def _demo_scenario(console: Console, client: Client, replayer: Any, sc: dict[str, Any], i: int, n: int) -> None:
    from rich.rule import Rule
    from rich.text import Text

    from . import _demo

    console.print()
    title = _escape(f"{i}/{n} replayed · {sc['title']} · {sc['model']}")
    console.print(Rule(title, align="left", style="cyan"))
    console.print(Text(sc["note"], style="italic"))
    args = sc.get("args") or {}
    if "prompt" in args:
        console.print(Text(f"> {args['prompt']}", style="bold"))
    elif "inputs" in args:
        console.print(Text(f"> embed {args['inputs']!r}", style="bold"))
    streamed: list[str] = []

    def on_chunk(chunk: Any) -> None:
        if chunk.text:
            streamed.append(chunk.text)
            console.print(chunk.text, end="", markup=False, highlight=False)

    result = _demo.run_scenario(client, replayer, sc, on_chunk=on_chunk)
    from ._types import Completion

    if isinstance(result, Completion):
        if streamed:
            console.print()
            console.print(Text(f"({len(streamed)} chunks streamed; usage came with the last event)", style="dim"))
        elif result.text:
            console.print(result.text, markup=False)
        for call in result.tool_calls:
            console.print(Text(f"tool call: {call.name}({call.arguments})", style="magenta"))
        detail = f"finish_reason={result.finish_reason}"
        if result.response_model and result.response_model != result.model:
            detail += f", answered by {result.response_model}"
    else:
        detail = f"{len(result.vectors)} vectors x {result.dimensions} dimensions"
    u = result.usage
    console.print(Text(f"usage: {u.input_tokens} input + {u.output_tokens} output tokens; {detail}", style="dim"))
    _print_attempts(console, result.attempts)
    _print_cost(console, result.cost, target=_unpriced_key(result))


# --------------------------------------------------------------------------------------------- finetune

finetune_app = typer.Typer(
    name="finetune",
    help="Fine-tuning jobs: estimate before launch, launch, follow, cancel; with the actual cost at the end.",
    no_args_is_help=True,
)
app.add_typer(finetune_app, name="finetune")

JobArgument = Annotated[str, typer.Argument(help="provider:job-id, e.g. openai:ftjob-abc123.")]


def _print_job(console: Console, job: Any) -> None:
    from rich.text import Text

    console.print(Text(f"{job.provider}:{job.id or '(dry run)'}  {job.status}", style="bold"))
    console.print(f"base model: {job.base_model}", markup=False)
    if job.fine_tuned_model:
        console.print(f"fine-tuned model: {job.fine_tuned_model}", markup=False)
    if job.trained_tokens is not None:
        console.print(f"trained tokens: {job.trained_tokens}", markup=False)
    if job.error:
        console.print(Text(f"error: {job.error}", style="red"))
    if job.estimate is not None:
        console.print(Text("estimate:", style="bold"))
        _print_cost(console, job.estimate)
    if job.done and not job.dry_run:
        console.print(Text("actual:", style="bold"))
        _print_cost(console, job.cost)


def _ft_options(epochs: int | None, hyper: list[str] | None) -> dict[str, Any]:
    return {"epochs": epochs, "hyperparameters": _parse_inputs(hyper or []) or None}


EpochsOption = Annotated[int | None, typer.Option("--epochs", min=1, help="Epochs (default: the provider's).")]
HyperOption = Annotated[list[str] | None, typer.Option("--hyper", "-p", help="A hyperparameter, key=value (repeat).")]
TrainingArgument = Annotated[str, typer.Argument(help="Training data: a JSONL file (or a URL for Replicate).")]


@finetune_app.command("estimate")
def finetune_estimate(
    model: Annotated[str, typer.Argument(help="provider:base-model, e.g. openai:gpt-4o-mini-2024-07-18.")],
    training_file: TrainingArgument,
    epochs: EpochsOption = None,
    hyper: HyperOption = None,
    method: Annotated[str, typer.Option("--method", help="supervised or dpo.")] = "supervised",
    json_out: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Check the training data and print what the job would cost (nothing is uploaded or launched)."""
    with _errors():
        client = _client(config)
        try:
            job = client.finetune(model, training_file=training_file, method=method, dry_run=True,
                                  **_ft_options(epochs, hyper))
        finally:
            client.close()
    if json_out:
        typer.echo(job.model_dump_json(exclude={"raw"}, indent=2))
        return
    console = _console()
    console.print(f"{job.metrics.get('examples')} examples, {job.metrics.get('tokens_per_epoch')} tokens an epoch",
                  markup=False)
    _print_cost(console, job.estimate)


@finetune_app.command("create")
def finetune_create(
    model: Annotated[str, typer.Argument(help="provider:base-model.")],
    training_file: TrainingArgument,
    validation_file: Annotated[str | None, typer.Option("--validation", help="Validation data.")] = None,
    epochs: EpochsOption = None,
    hyper: HyperOption = None,
    suffix: Annotated[str | None, typer.Option("--suffix", help="A name part for the new model.")] = None,
    method: Annotated[str, typer.Option("--method", help="supervised or dpo.")] = "supervised",
    destination: Annotated[str | None, typer.Option("--destination", help="Replicate: owner/name to push to.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the job to end (progress on a terminal).")] = False,
    json_out: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Launch a fine-tuning job; print its id, its estimate, and (with --wait) how it ended and what it cost."""
    with _errors():
        client = _client(config)
        try:
            job = client.finetune(model, training_file=training_file, validation_file=validation_file,
                                  suffix=suffix, method=method, destination=destination, wait=wait, progress=wait,
                                  **_ft_options(epochs, hyper))
        finally:
            client.close()
    if json_out:
        typer.echo(job.model_dump_json(exclude={"raw"}, indent=2))
        return
    _print_job(_console(), job)


def _attached(kind: str, job_id: str, config: Path | None, action: str, **kwargs: Any) -> Any:
    """Attach to a job or batch (``kind``: the class's name) by its ``provider:id`` and run ``action`` on it
    (``status`` returns it as it is; ``wait`` shows progress on a terminal)."""
    from . import _types

    with _errors():
        client = _client(config)
        try:
            job = getattr(_types, kind).attach(job_id, client=client)
            if action == "status":
                return job
            if action == "wait":
                kwargs["progress"] = True
            return getattr(job, action)(**kwargs)
        finally:
            client.close()


def _shown(job: Any, json_out: bool, show: Callable[[Console, Any], None]) -> None:
    """A job or batch as JSON (without ``raw``), or shown by ``show``."""
    if json_out:
        typer.echo(job.model_dump_json(exclude={"raw"}, indent=2))
        return
    show(_console(), job)


def _job_command(job_id: str, config: Path | None, action: str, **kwargs: Any) -> Any:
    return _attached("FineTuneJob", job_id, config, action, **kwargs)


@finetune_app.command("status")
def finetune_status(job_id: JobArgument, json_out: JsonOption = False, config: ConfigOption = None) -> None:
    """A job's status, model and (once it has ended) its actual cost."""
    _shown(_job_command(job_id, config, "status"), json_out, _print_job)


@finetune_app.command("events")
def finetune_events(
    job_id: JobArgument,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many of the latest events.")] = 20,
    config: ConfigOption = None,
) -> None:
    """A job's latest events, oldest first."""
    events = _job_command(job_id, config, "events", limit=limit)
    console = _console()
    for ev in events:
        when = ev.created_at.strftime("%Y-%m-%d %H:%M:%S") if ev.created_at else ""
        console.print(f"{when} {ev.level or ''} {ev.message}".strip(), markup=False)


@finetune_app.command("cancel")
def finetune_cancel(job_id: JobArgument, config: ConfigOption = None) -> None:
    """Cancel a job."""
    _print_job(_console(), _job_command(job_id, config, "cancel"))


@finetune_app.command("wait")
def finetune_wait(
    job_id: JobArgument,
    timeout: Annotated[float | None, typer.Option("--timeout", min=0, help="Seconds to wait (job keeps running).")]
    = None,
    config: ConfigOption = None,
) -> None:
    """Wait for a job to end (a progress bar on a terminal), then print how it ended and what it cost."""
    _print_job(_console(), _job_command(job_id, config, "wait", timeout=timeout))


# --------------------------------------------------------------------------------------------- batch

batch_app = typer.Typer(
    name="batch",
    help="Batches at the provider's batch price: check and estimate, submit, follow, and read the results with what "
         "each item cost and what batching saved.",
    no_args_is_help=True,
)
app.add_typer(batch_app, name="batch")

BatchArgument = Annotated[str, typer.Argument(help="provider:batch-id, as submit printed it (openai:batch_abc123).")]


def _parse_tags(pairs: list[str]) -> dict[str, str]:
    """``--tag key=value`` pairs -> a dict (values stay text: tags are strings)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r}: write --tag key=value", param_hint="--tag")
        out[key] = value
    return out


def _batch_ref(job: Any) -> str:
    """How to name the batch to a later command: ``provider:id``."""
    return f"{job.provider}:{job.id}"


def _print_batch(console: Console, job: Any) -> None:
    """A batch's state as aligned ``label  value`` rows."""
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    status = job.status + (f" ({job.provider_status})" if job.provider_status and job.provider_status != job.status
                           else "")
    model = job.target if job.model else (f"{job.provider}: unknown until results are read (the provider's batch "
                                          "object names no model)")
    rows = [("batch", _batch_ref(job) if job.id else "(estimate only: nothing submitted)"), ("model", model),
            ("kind", job.kind), ("status", status)]
    if job.total is not None:
        rows.append(("requests", f"{job.total:,}: {job.completed:,} completed, {job.failed:,} failed"))
    for label, when in (("created", job.created_at), ("ended", job.finished_at)):
        if when is not None:
            rows.append((label, when.strftime("%Y-%m-%d %H:%M:%S UTC")))
    for label, value in rows:
        grid.add_row(label, _escape(str(value)))
    console.print(grid)


def _batch_command(batch_id: str, config: Path | None, action: str, **kwargs: Any) -> Any:
    return _attached("BatchJob", batch_id, config, action, **kwargs)


@batch_app.command("submit")
def batch_submit(
    requests_file: Annotated[Path, typer.Argument(
        help="A JSONL file, one request a line: a custom_id and what complete() takes (messages, max_tokens ...) "
             "or what embed() takes (input).", dir_okay=False)],
    model: Annotated[str, typer.Option("--model", "-m", help="provider:model every request runs on.")],
    tags: Annotated[list[str] | None, typer.Option(
        "--tag", help="A label stored with every item's ledger row, key=value (repeat).")] = None,
    estimate_only: Annotated[bool, typer.Option(
        "--estimate-only", help="Check every line and print the estimate: nothing is uploaded.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the BatchJob as JSON.")] = False,
    config: ConfigOption = None,
) -> None:
    """Check every line, print the estimate at the batch price, and submit the batch (print its id).

    A bad line is named by its number and nothing is uploaded. A budget reserves the batch's worst case first.
    """
    labels = _parse_tags(tags or [])
    with _errors():
        client = _client(config)
        try:
            job = client.batch(model, requests_file, tags=labels or None, estimate_only=estimate_only)
        finally:
            client.close()
    if json_out:
        typer.echo(job.model_dump_json(exclude={"raw"}, indent=2))
        return
    from rich.text import Text

    console = _console()
    with requests_file.open("rb") as fh:  # every line passed: one request a non-blank line
        count = sum(1 for line in fh if line.strip())
    console.print(f"{count:,} {job.kind}() requests checked in {requests_file}", markup=False)
    console.print(Text("estimate (every request at its max_tokens, at the batch price):", style="bold"))
    _print_cost(console, job.estimate, target=job.target)
    if job.estimate_only:
        console.print(Text("estimate only: nothing uploaded or submitted", style="bold"))
        return
    ref = _batch_ref(job)
    console.print(Text(f"submitted {ref}  {job.status}", style="bold green"))
    console.print(f"follow it:  computekit batch wait {ref}", markup=False)
    console.print(f"read it:    computekit batch results {ref} --out results.jsonl", markup=False)


@batch_app.command("status")
def batch_status(batch_id: BatchArgument, json_out: JsonOption = False, config: ConfigOption = None) -> None:
    """A batch's status and request counts."""
    _shown(_batch_command(batch_id, config, "status"), json_out, _print_batch)


@batch_app.command("wait")
def batch_wait(
    batch_id: BatchArgument,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", min=0, help="Seconds to wait (the batch keeps running when they pass; exit 2).")] = None,
    poll_interval: Annotated[float | None, typer.Option(
        "--poll-interval", min=0, help="Seconds between polls (default: 10, growing to 300).")] = None,
    json_out: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Wait for a batch to end (its progress on a terminal), then print how it ended."""
    job = _batch_command(batch_id, config, "wait", timeout=timeout, poll_interval=poll_interval)
    if json_out:
        typer.echo(job.model_dump_json(exclude={"raw"}, indent=2))
        return
    console = _console()
    _print_batch(console, job)
    console.print(f"read it:    computekit batch results {_batch_ref(job)} --out results.jsonl", markup=False)


@batch_app.command("cancel")
def batch_cancel(batch_id: BatchArgument, json_out: JsonOption = False, config: ConfigOption = None) -> None:
    """Cancel a batch (what already ran is billed, and its results can still be read)."""
    _shown(_batch_command(batch_id, config, "cancel"), json_out, _print_batch)


def _result_line(custom_id: str, answer: Any) -> dict[str, Any]:
    """One result as a JSON object: the answer (text or embeddings) or the error, its usage and its cost."""
    from ._money import plain
    from ._types import Completion

    out: dict[str, Any] = {"custom_id": custom_id}
    if isinstance(answer, ComputeKitError):
        out["error"] = {"type": type(answer).__name__, "status": getattr(answer, "status", None),
                        "message": _redact(str(answer))}
    elif isinstance(answer, Completion):
        out["text"] = answer.text
    else:
        out["embeddings"] = answer.vectors
    if not isinstance(answer, ComputeKitError):
        out["model"] = answer.model
        out["usage"] = answer.usage.model_dump(exclude_defaults=True)
    # A failed item carries its cost too: 0 unless the provider billed it (the same figure as its ledger row).
    cost = getattr(answer, "cost", None)
    out["cost"] = None if cost is None or cost.total is None else plain(cost.total)
    if cost is not None and cost.total is None:
        out["cost_reason"] = cost.reason
    return out


@batch_app.command("results")
def batch_results(
    batch_id: BatchArgument,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", dir_okay=False,
        help="Write the JSONL here (default: stdout, with the summary on stderr).")] = None,
    config: ConfigOption = None,
) -> None:
    """Read an ended batch's results as JSONL (custom_id, text or embeddings or error, usage, cost), each item
    priced at the batch price and recorded in the ledger once, then what the batch cost, what the same calls
    cost synchronously, and what was saved.
    """
    import json

    from ._types import BatchJob

    if out is not None and not out.parent.is_dir():
        _fail(f"--out {out}: no such folder {str(out.parent)!r}")
    sink = None
    partial = None if out is None else out.with_name(out.name + ".partial")
    answered = failed = 0
    with _errors():
        client = _client(config)
        try:
            job = BatchJob.attach(batch_id, client=client)
            if not job.done:
                _fail(f"batch {batch_id} is still {job.status}: its results are read once it has ended "
                      f"(computekit batch wait {batch_id})")
            # The file is written beside its final name and moved there once complete: an interrupted read
            # leaves no half file under that name (the items read are in the ledger; reading again adds nothing).
            sink = sys.stdout if partial is None else partial.open("w", encoding="utf-8")
            for custom_id, answer in client.batches.results(job):
                line = _result_line(custom_id, answer)
                failed += "error" in line
                answered += "error" not in line
                sink.write(json.dumps(line, ensure_ascii=False) + "\n")
        finally:
            if sink is not None and sink is not sys.stdout:
                sink.close()
            client.close()
    if partial is not None:
        partial.replace(out)  # type: ignore[arg-type]
    console = _console(stderr=out is None)
    if out is not None:
        console.print(f"wrote {answered + failed:,} results to {out}", markup=False)
    print_batch_summary(console, job, answered, failed)


def print_batch_summary(console: Console, job: Any, answered: int, failed: int) -> None:
    """What a read batch cost at the batch price, its synchronous price and what was saved, money aligned."""
    from rich.table import Table

    title = _batch_ref(job) + (f" ({job.target})" if job.model else "")
    table = Table(title=f"{title}: {answered:,} answered, {failed:,} failed",
                  title_justify="left")
    table.add_column("", no_wrap=True)
    table.add_column("USD", justify="right", no_wrap=True)
    cost = job.cost.total
    rows = [("batch cost", cost), ("synchronous price", job.synchronous), ("saved", job.saved)]
    if job.estimate is not None and job.estimate.total is not None:
        rows.append(("estimate", job.estimate.total))
    cells = _aligned(["unpriced" if value is None else _money(value) for _, value in rows])
    for (label, _), cell in zip(rows, cells, strict=True):
        table.add_row(label, cell)
    _print_table(console, table)
    if cost is None:
        console.print(f"unpriced: {job.cost.reason} (cost is None, not $0)", markup=False)
    elif job.saved is not None and job.synchronous:
        console.print(f"saved {job.saved / job.synchronous:.0%} of the synchronous price", markup=False)


# --------------------------------------------------------------------------------------------- entry point


def main() -> None:
    """The ``computekit`` console script."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
