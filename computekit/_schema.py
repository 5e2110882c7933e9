"""Check a model's input against the JSON schema its host publishes, before anything is sent (pure: no I/O).

Hosts describe a model's input with a JSON schema (Replicate: the ``Input`` schema in a version's OpenAPI
document). A misspelt field name is silently ignored by most models, and the run is billed all the same, so
the check is stricter than JSON Schema in one way: an object that lists its ``properties`` and says nothing
about ``additionalProperties`` takes no other names (``closed=True``). The rest is the subset of JSON Schema
(and OpenAPI 3.0) that model schemas use: ``type`` (and ``nullable``), ``enum``/``const``, ``minimum`` /
``maximum`` / ``exclusiveMinimum`` / ``exclusiveMaximum`` / ``multipleOf``, ``minLength`` / ``maxLength`` /
``pattern``, ``items`` / ``minItems`` / ``maxItems``, ``required``, ``properties`` / ``additionalProperties``,
``allOf`` / ``anyOf`` / ``oneOf`` and local ``$ref``. Formats are not checked (a ``uri`` input may also be a data
URI or a file the host accepts).

Usable by any adapter whose host publishes a schema: the adapter says where the schema is
(:class:`~computekit.adapters._base.ModelInfo`), this module checks.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ._exceptions import InputValidationError

__all__ = ["check_input", "problems"]

_MAX_DEPTH = 32
"""A schema that refers to itself deeper than this is cyclic: stop instead of recursing forever."""

_TYPES: dict[str, str] = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a dict",
    "null": "null (None)",
}


def check_input(schema: Mapping[str, Any], value: Any, *, root: Mapping[str, Any] | None = None,
                provider: str | None = None, model: str | None = None, closed: bool = True) -> None:
    """Raise when ``value`` does not match ``schema``.

    Args:
        schema: The input's JSON schema.
        value: The input (a dict, for a model's input).
        root: The document local ``$ref`` (``#/components/schemas/...``) resolve against; default ``schema``.
        provider: Named in the error.
        model: Named in the error.
        closed: Refuse names an object schema does not list (unless it allows ``additionalProperties``).

    Raises:
        InputValidationError: The input does not match; ``field`` names the first field at fault and the
            message lists every problem, with the closest known name for an unknown one.
    """
    found = problems(schema, value, root=root, closed=closed)
    if not found:
        return
    where = f"{provider}:{model}" if provider and model else (model or provider or "the model")
    listed = "; ".join(f"{f}: {m}" if f else m for f, m in found)
    raise InputValidationError(
        f"input does not match the schema of {where}: {listed} (nothing was sent; pass validate=False to skip "
        "this check)",
        field=found[0][0] or None,
        problems=found,
        provider=provider,
        model=model,
    )


def problems(schema: Mapping[str, Any], value: Any, *, root: Mapping[str, Any] | None = None,
             closed: bool = True) -> list[tuple[str, str]]:
    """Every way ``value`` fails ``schema``, as ``(field path, message)`` pairs (empty when it matches)."""
    out: list[tuple[str, str]] = []
    _Checker(root if root is not None else schema, closed, out).check(schema, value, "", 0)
    return out


class _Checker:
    def __init__(self, root: Mapping[str, Any], closed: bool, out: list[tuple[str, str]]) -> None:
        self.root = root
        self.closed = closed
        self.out = out

    def fail(self, path: str, message: str) -> None:
        self.out.append((path, message))

    def resolve(self, schema: Mapping[str, Any], depth: int) -> Mapping[str, Any]:
        while isinstance(schema, Mapping) and isinstance(schema.get("$ref"), str) and depth < _MAX_DEPTH:
            ref = schema["$ref"]
            target: Any = self.root
            if not ref.startswith("#"):
                return {}  # a remote reference: not followed (no I/O here), so not checked
            for part in ref.lstrip("#").strip("/").split("/") if ref != "#" else []:
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part) if isinstance(target, Mapping) else None
            if not isinstance(target, Mapping):
                return {}
            # Siblings of $ref (OpenAPI 3.1 / Cog: "default", "description") are kept; the target wins otherwise.
            extra = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **{k: v for k, v in extra.items() if k not in target}}
            depth += 1
        return schema

    def check(self, schema: Any, value: Any, path: str, depth: int) -> None:
        if depth > _MAX_DEPTH or not isinstance(schema, Mapping):
            return
        schema = self.resolve(schema, depth)
        if value is None and schema.get("nullable") is True:
            return
        for sub in schema.get("allOf") or []:
            self.check(sub, value, path, depth + 1)
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                self.alternatives(options, value, path, depth, exactly_one=key == "oneOf")
        if "const" in schema and not _equal(value, schema["const"]):
            self.fail(path, f"must be {schema['const']!r}")
            return
        enum = schema.get("enum")
        if isinstance(enum, list) and not any(_equal(value, e) for e in enum):
            self.fail(path, f"{value!r} is not one of {', '.join(repr(e) for e in enum)}")
            return
        if not self.type_ok(schema, value, path):
            return
        if isinstance(value, bool):
            return
        if isinstance(value, int | float | Decimal):
            self.number(schema, value, path)
        elif isinstance(value, str):
            self.string(schema, value, path)
        elif isinstance(value, list | tuple):
            self.array(schema, value, path, depth)
        elif isinstance(value, Mapping):
            self.object(schema, value, path, depth)

    def alternatives(self, options: list[Any], value: Any, path: str, depth: int, *, exactly_one: bool) -> None:
        matched = 0
        for option in options:
            trial: list[tuple[str, str]] = []
            _Checker(self.root, self.closed, trial).check(option, value, path, depth + 1)
            matched += not trial
        if matched == 0:
            self.fail(path, f"{_show(value)} matches none of the allowed forms")
        elif exactly_one and matched > 1:
            self.fail(path, f"{_show(value)} matches more than one of the allowed forms")

    def type_ok(self, schema: Mapping[str, Any], value: Any, path: str) -> bool:
        declared = schema.get("type")
        if declared is None:
            return True
        types = [declared] if isinstance(declared, str) else list(declared)
        if schema.get("nullable") is True:
            types.append("null")
        if any(_is(t, value) for t in types):
            return True
        wanted = " or ".join(_TYPES.get(t, t) for t in types)
        self.fail(path, f"must be {wanted}, not {_kind(value)} {_show(value)}")
        return False

    def number(self, schema: Mapping[str, Any], value: float | Decimal, path: str) -> None:
        lo: Any = schema.get("minimum")
        hi: Any = schema.get("maximum")
        xlo: Any = schema.get("exclusiveMinimum")
        xhi: Any = schema.get("exclusiveMaximum")
        if xlo is True:  # OpenAPI 3.0: a boolean that makes "minimum" exclusive
            xlo, lo = lo, None
        if xhi is True:
            xhi, hi = hi, None
        if _num(lo) and value < lo:
            self.fail(path, f"{value} is below the minimum {lo}")
        if _num(hi) and value > hi:
            self.fail(path, f"{value} is above the maximum {hi}")
        if _num(xlo) and value <= xlo:
            self.fail(path, f"{value} must be greater than {xlo}")
        if _num(xhi) and value >= xhi:
            self.fail(path, f"{value} must be less than {xhi}")
        step: Any = schema.get("multipleOf")
        if _num(step) and step > 0 and not _multiple(value, step):
            self.fail(path, f"{value} is not a multiple of {step}")

    def string(self, schema: Mapping[str, Any], value: str, path: str) -> None:
        lo, hi = schema.get("minLength"), schema.get("maxLength")
        if isinstance(lo, int) and len(value) < lo:
            self.fail(path, f"is {len(value)} characters long; at least {lo} are needed")
        if isinstance(hi, int) and len(value) > hi:
            self.fail(path, f"is {len(value)} characters long; at most {hi} are allowed")
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            try:
                if re.search(pattern, value) is None:
                    self.fail(path, f"{_show(value)} does not match the pattern {pattern!r}")
            except re.error:
                pass  # a pattern Python cannot read: not ours to refuse the input for

    def array(self, schema: Mapping[str, Any], value: list[Any] | tuple[Any, ...], path: str, depth: int) -> None:
        lo, hi = schema.get("minItems"), schema.get("maxItems")
        if isinstance(lo, int) and len(value) < lo:
            self.fail(path, f"has {len(value)} items; at least {lo} are needed")
        if isinstance(hi, int) and len(value) > hi:
            self.fail(path, f"has {len(value)} items; at most {hi} are allowed")
        items = schema.get("items")
        if isinstance(items, Mapping):
            for i, item in enumerate(value):
                self.check(items, item, f"{path}[{i}]", depth + 1)

    def object(self, schema: Mapping[str, Any], value: Mapping[str, Any], path: str, depth: int) -> None:
        props = schema.get("properties")
        props = props if isinstance(props, Mapping) else {}
        extra = schema.get("additionalProperties", None)
        for name, item in value.items():
            sub_path = _join(path, str(name))
            if name in props:
                self.check(props[name], item, sub_path, depth + 1)
            elif isinstance(extra, Mapping):
                self.check(extra, item, sub_path, depth + 1)
            elif extra is False or (extra is None and self.closed and props):
                self.fail(sub_path, _unknown(str(name), list(props)))
        # After the names given: a misspelt name is the likelier cause of a "missing" one, and is named first.
        for name in schema.get("required") or []:
            if name not in value:
                self.fail(_join(path, name), "is required")


def _unknown(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if not close:  # "Prompt" for "prompt", "numOutputs" for "num_outputs"
        folded = {k.lower().replace("_", "").replace("-", ""): k for k in known}
        hit = folded.get(name.lower().replace("_", "").replace("-", ""))
        close = [hit] if hit else []
    hint = f"did you mean {close[0]!r}?" if close else f"known fields: {', '.join(sorted(known))}"
    return f"is not an input of this model; {hint}"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _is(kind: str, value: Any) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        if isinstance(value, bool):
            return False
        if isinstance(value, int):
            return True
        return isinstance(value, float | Decimal) and math.isfinite(value) and value == int(value)
    if kind == "number":
        return isinstance(value, int | float | Decimal) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "array":
        return isinstance(value, list | tuple)
    if kind == "object":
        return isinstance(value, Mapping)
    if kind == "null":
        return value is None
    return True  # an unknown type word: not ours to refuse


def _num(v: Any) -> bool:
    return isinstance(v, int | float | Decimal) and not isinstance(v, bool)


def _multiple(value: float | Decimal, step: float | Decimal) -> bool:
    q = Decimal(str(value)) / Decimal(str(step))
    return q == q.to_integral_value()


def _equal(a: Any, b: Any) -> bool:
    # JSON equality: 1 == 1.0, but True is not 1.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    return bool(a == b)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float | Decimal):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a dict"
    return type(value).__name__


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
