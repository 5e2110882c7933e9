"""Structured output: a Python type as ``response_format``, its JSON schema in each provider's dialect, and the
answer validated back into the type.

Pure: no I/O, no provider names. Adapters pick the dialect they send (:func:`strict_schema` for OpenAI's strict
mode, :func:`subset_schema` for OpenAPI-subset dialects such as Gemini's ``responseSchema``); the client validates
the answer with :meth:`OutputType.validate` whatever the provider.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ._exceptions import InvalidRequestError, StructuredOutputError

if TYPE_CHECKING:
    from ._types import Completion

_C = TypeVar("_C", bound="Completion")

__all__ = [
    "FORCED_TOOL_NAME",
    "MAX_SCHEMA_NODES",
    "STRICT_UNSUPPORTED",
    "WRAPPER_FIELD",
    "OutputType",
    "forced_tool",
    "forced_tool_answer",
    "inline_refs",
    "output_type",
    "parse_output",
    "recursive_def",
    "schema_instruction",
    "strict_schema",
    "subset_schema",
]

WRAPPER_FIELD = "value"
"""The one field of the object a type that is not an object is asked for in (``{"value": [1, 2, 3]}``)."""

MAX_SCHEMA_NODES = 20_000
"""The most schema nodes a dialect's form of a schema may have once its ``$ref`` are inlined: a model reused at
many levels doubles with each one, and what is sent is billed as input."""

FORCED_TOOL_NAME = "structured_output"
"""The tool a provider without a JSON-schema mode is made to call: its arguments are the answer."""

_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_-]")
_MAX_NAME = 64  # OpenAI's limit on json_schema.name (letters, digits, _ and -)

# Keywords OpenAI's strict mode refuses (its structured-outputs guide, "Supported schemas"); they are still
# enforced here, by validation of the answer, so dropping them from what is sent loses nothing.
STRICT_UNSUPPORTED = frozenset({
    "default", "minLength", "maxLength", "uniqueItems", "patternProperties", "propertyNames", "minProperties",
    "maxProperties", "unevaluatedProperties", "contains", "minContains", "maxContains", "if", "then", "else",
    "not", "examples", "discriminator", "contentEncoding", "contentMediaType", "readOnly", "writeOnly",
    "deprecated",
})

# What an OpenAPI 3.0 Schema subset (Gemini's responseSchema) keeps: everything else is dropped, $refs inlined.
_SUBSET_KEYS = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "items", "minItems", "maxItems", "properties",
    "required", "anyOf", "minimum", "maximum", "propertyOrdering", "minProperties", "maxProperties", "minLength",
    "maxLength", "pattern",
})


@dataclass(frozen=True, slots=True)
class OutputType:
    """A type the answer must be: its name, its JSON schema (pydantic's, ``$defs`` kept) and its validator."""

    type: Any
    name: str
    schema: dict[str, Any]
    adapter: Any = field(repr=False)
    wrapper: Any = field(default=None, repr=False)
    """For a type that is not an object (``list[int]``, a ``Literal``, a union): the validator of the one-field
    object ``{"value": ...}`` that is asked for instead, since strict dialects and tool inputs take only an object
    at the root. ``None`` for an object type."""

    def validate(self, text: str) -> Any:
        """The answer as an instance of the type (unwrapped from ``{"value": ...}`` when the type was wrapped).

        Raises:
            pydantic.ValidationError: The text is not JSON, or does not fit the type.
        """
        from pydantic import ValidationError

        s = _strip_fence(text)
        if self.wrapper is None:
            return self.adapter.validate_json(s)
        try:
            return getattr(self.wrapper.validate_json(s), WRAPPER_FIELD)
        except ValidationError:
            try:  # a host that takes no schema may answer the bare value: it is as good
                return self.adapter.validate_json(s)
            except ValidationError:
                pass
            raise

    def response_format(self) -> dict[str, Any]:
        """The call's ``response_format`` in computekit's (OpenAI's) dict form, for adapters that read it."""
        return {"type": "json_schema", "json_schema": {"name": self.name, "schema": self.schema, "strict": True}}


def output_type(fmt: Any) -> OutputType | None:
    """``response_format`` as an :class:`OutputType` when it is a type (a pydantic model, a dataclass,
    ``list[int]`` ... anything pydantic's ``TypeAdapter`` accepts); ``None`` for the dict forms and when absent.

    Raises:
        InvalidRequestError: It is neither a dict nor a type pydantic can describe with a JSON schema.
    """
    if fmt is None or isinstance(fmt, Mapping):
        return None
    from pydantic import TypeAdapter  # pydantic is a core dependency; TypeAdapter is heavy to import eagerly

    try:
        adapter: Any = TypeAdapter(fmt)
        schema = adapter.json_schema()
    except Exception as e:  # PydanticSchemaGenerationError, PydanticUserError, TypeError ...
        raise InvalidRequestError(
            f"response_format must be a dict or a type pydantic can describe (a BaseModel subclass, a dataclass, "
            f"list[...] ...); {fmt!r} is not: {e}"
        ) from e
    raw_name = getattr(fmt, "__name__", None) or schema.get("title") or "output"
    name = _NAME_CHARS.sub("_", str(raw_name))[:_MAX_NAME] or "output"
    schema = _root_resolved(schema)
    if schema.get("type") == "object":
        return OutputType(type=fmt, name=name, schema=schema, adapter=adapter)
    # OpenAI's strict mode, Anthropic's tool input_schema (type: object) and Converse's take only an object at
    # the root: any other type is asked for as {"value": ...} and unwrapped when validated.
    defs = schema.pop("$defs", None)
    wrapped: dict[str, Any] = {"type": "object", "title": name, "properties": {WRAPPER_FIELD: schema},
                               "required": [WRAPPER_FIELD], "additionalProperties": False}
    if defs:
        wrapped["$defs"] = defs
    from pydantic import ConfigDict, create_model

    fields: dict[str, Any] = {WRAPPER_FIELD: (fmt, ...)}
    answer: Any = create_model(f"{name}Answer", __config__=ConfigDict(extra="forbid"), **fields)
    return OutputType(type=fmt, name=name, schema=wrapped, adapter=adapter, wrapper=TypeAdapter(answer))


def _root_resolved(schema: dict[str, Any]) -> dict[str, Any]:
    # pydantic describes a recursive model as {"$defs": {...}, "$ref": "#/$defs/Node"}: the root is the
    # definition it names (its $defs kept, for the recursion), so the root says what it is.
    ref = schema.get("$ref")
    defs = schema.get("$defs") or {}
    if isinstance(ref, str) and ref.startswith("#/$defs/") and ref.removeprefix("#/$defs/") in defs:
        target = defs[ref.removeprefix("#/$defs/")]
        return {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _strip_fence(text: str) -> str:
    # Hosts without a schema mode (and a forced tool's prose twin) sometimes wrap JSON in a Markdown fence.
    s = text.strip()
    if s.startswith("```") and s.endswith("```"):
        s = s[3:-3]
        s = s.split("\n", 1)[1] if "\n" in s and not s.lstrip().startswith("{") else s
    return s.strip()


# Keywords whose value is a map of names to schemas, and keywords whose value is a schema or a list of them: a
# schema walk goes into these and no further (a property called "default" or "minimum" is a name, not a keyword).
_SCHEMA_MAPS = frozenset({"properties", "$defs", "definitions", "patternProperties", "dependentSchemas"})
_SCHEMA_KEYS = frozenset({"items", "prefixItems", "additionalProperties", "anyOf", "oneOf", "allOf", "not",
                          "contains", "if", "then", "else", "propertyNames", "unevaluatedProperties"})
_TYPING_KEYS = frozenset({"type", "anyOf", "oneOf", "allOf", "$ref", "enum", "const"})


class _Nodes:
    """Counts the nodes a dialect's form of a schema has, refusing one that grows past :data:`MAX_SCHEMA_NODES`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0

    def add(self) -> None:
        self.count += 1
        if self.count > MAX_SCHEMA_NODES:
            raise InvalidRequestError(
                f"response_format: {self.name}'s schema grows past {MAX_SCHEMA_NODES} nodes once its $refs are "
                f"inlined (a model reused at many levels doubles with each one), and what is sent is billed as "
                f"input: reuse fewer nested models, or drop the descriptions on the fields that reuse them"
            )


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _free_map(node: Mapping[str, Any]) -> bool:
    # dict[str, X] / dict[str, Any]: an object whose keys are not named. (A model with extra="allow" names its
    # fields, and closing it only stops the model inventing more.)
    kind = node.get("type")
    is_object = kind == "object" or (isinstance(kind, list) and "object" in kind)
    return is_object and "properties" not in node and node.get("additionalProperties", True) is not False


def _untyped(node: Mapping[str, Any]) -> bool:
    return not any(k in node for k in _TYPING_KEYS)


def recursive_def(schema: Mapping[str, Any]) -> str | None:
    """The name of a definition in ``schema``'s ``$defs`` that refers to itself (directly or through others), or
    ``None`` when the schema is not recursive."""
    defs = schema.get("$defs") or {}

    def refs(node: Any) -> set[str]:
        if isinstance(node, list):
            return set().union(*(refs(n) for n in node)) if node else set()
        if not isinstance(node, Mapping):
            return set()
        found = {node["$ref"].removeprefix("#/$defs/")} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(refs(v) for k, v in node.items() if k != "$defs"))

    edges = {key: refs(d) for key, d in defs.items()}
    for start in edges:
        seen, todo = set(), list(edges[start])
        while todo:
            key = todo.pop()
            if key == start:
                return str(start)
            if key not in seen:
                seen.add(key)
                todo.extend(edges.get(key, ()))
    return None


def inline_refs(schema: Mapping[str, Any], *, name: str = "response_format") -> dict[str, Any]:
    """``schema`` with every local ``$ref`` replaced by its definition and ``$defs`` removed.

    Raises:
        InvalidRequestError: The schema is recursive (a dialect without ``$ref`` cannot express it), or grows past
            :data:`MAX_SCHEMA_NODES` once inlined.
    """
    defs = dict(schema.get("$defs") or {})
    nodes = _Nodes(name)

    def walk(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [walk(n, seen) for n in node]
        if not isinstance(node, Mapping):
            return node
        nodes.add()
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            key = ref.removeprefix("#/$defs/")
            if key in seen:
                raise InvalidRequestError(f"response_format: {key} is recursive, which this provider's schema "
                                          f"dialect cannot express")
            merged = {**defs.get(key, {}), **{k: v for k, v in node.items() if k != "$ref"}}
            return walk(merged, (*seen, key))
        return {k: walk(v, seen) for k, v in node.items() if k != "$defs"}

    out: dict[str, Any] = walk(schema, ())
    return out


def strict_schema(schema: Mapping[str, Any], *, drop: frozenset[str] = STRICT_UNSUPPORTED,
                  all_required: bool = True, open_maps: bool = False, require_types: bool = True,
                  name: str = "response_format", dialect: str = "strict structured outputs") -> dict[str, Any]:
    """``schema`` in strict structured-output form: every object closed (``additionalProperties: false``) and,
    with ``all_required``, every property required (an optional field stays nullable through its ``anyOf``);
    keywords in ``drop`` removed; ``oneOf`` as ``anyOf`` (strict modes refuse ``oneOf``; the answer is still
    validated against the type); a ``$ref`` with siblings inlined (strict mode refuses siblings).

    Raises:
        InvalidRequestError: A field is a dict with free keys (``dict[str, ...]``), which a closed object cannot
            express (unless ``open_maps``, for a tool that is not strict: it is left open), or, with
            ``require_types``, has no type (``Any``); or the schema grows past :data:`MAX_SCHEMA_NODES` once its
            ``$ref`` with siblings are inlined.
    """
    root = copy.deepcopy(dict(schema))
    defs = root.get("$defs") or {}
    nodes = _Nodes(name)

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, list):
            return [walk(n, path) for n in node]
        if not isinstance(node, dict):
            return node
        nodes.add()
        if "$ref" in node and len(node) > 1:
            ref = node["$ref"]
            target = defs.get(ref.removeprefix("#/$defs/"), {}) if isinstance(ref, str) else {}
            node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        if _free_map(node) and not open_maps:
            raise InvalidRequestError(
                f"response_format: {path or name} is a dict with free keys (dict[str, ...]), which {dialect} "
                f"cannot express (every object is closed to the fields it names): give it named fields (a model), "
                f"or make it a list of key/value items"
            )
        if path and require_types and _untyped(node):
            raise InvalidRequestError(
                f"response_format: {path} has no type (Any), which {dialect} cannot express: give it a type"
            )
        out: dict[str, Any] = {}
        for k, v in node.items():
            if k in drop:
                continue
            if k in _SCHEMA_MAPS and isinstance(v, Mapping):
                # A field is named from its object (the root: the type's name); a definition from itself.
                out[k] = {n: walk(sub, _join(path or name, n) if k == "properties" else n) for n, sub in v.items()}
            elif k in _SCHEMA_KEYS:
                out[k] = walk(v, path + "[]" if k in ("items", "prefixItems") else path)
            else:
                out[k] = v
        if "oneOf" in out and "anyOf" not in out:
            out["anyOf"] = out.pop("oneOf")
        if "allOf" in out and len(out["allOf"]) == 1:  # pydantic wraps a described $ref this way
            only = out.pop("allOf")[0]
            out = {**only, **out}
        if not (open_maps and _free_map(out)) and (out.get("type") == "object" or "properties" in out):
            out["additionalProperties"] = False
            props = out.get("properties") or {}
            if all_required:
                out["required"] = list(props)
        return out

    out: dict[str, Any] = walk(root, "")
    return out


def subset_schema(schema: Mapping[str, Any], *, name: str = "response_format") -> dict[str, Any]:
    """``schema`` in an OpenAPI 3.0 subset (Gemini's ``responseSchema``): ``$ref`` inlined, ``anyOf`` with
    ``null`` as ``nullable``, ``oneOf`` as ``anyOf``, ``const`` as a one-value ``enum``, and only the keywords the
    subset knows.

    Raises:
        InvalidRequestError: The type is recursive, or grows past :data:`MAX_SCHEMA_NODES` once inlined; or a
            field is a dict with free keys (``dict[str, ...]``): the subset has no ``additionalProperties``, and an
            object without properties is refused.
    """

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, list):
            return [walk(n, path) for n in node]
        if not isinstance(node, Mapping):
            return node
        node = dict(node)
        if _free_map(node):
            raise InvalidRequestError(
                f"response_format: {path or name} is a dict with free keys (dict[str, ...]), which this provider's "
                f"schema dialect (an OpenAPI subset, with no additionalProperties) cannot express: give it named "
                f"fields (a model), or make it a list of key/value items"
            )
        if "const" in node:
            node["enum"] = [node.pop("const")]
        if "oneOf" in node and "anyOf" not in node:
            node["anyOf"] = node.pop("oneOf")
        any_of = node.get("anyOf")
        if isinstance(any_of, list):
            rest = [s for s in any_of if not (isinstance(s, Mapping) and s.get("type") == "null")]
            if len(rest) < len(any_of):
                node["nullable"] = True
            if len(rest) == 1:
                node.pop("anyOf")
                node = {**rest[0], **node}
            else:
                node["anyOf"] = rest
        if isinstance(node.get("type"), list):  # ["string", "null"]
            kinds = [t for t in node["type"] if t != "null"]
            if len(kinds) < len(node["type"]):
                node["nullable"] = True
            node["type"] = kinds[0] if len(kinds) == 1 else kinds
        out: dict[str, Any] = {}
        for k, v in node.items():
            if k not in _SUBSET_KEYS:
                continue
            if k == "properties" and isinstance(v, Mapping):
                out[k] = {n: walk(sub, _join(path or name, n)) for n, sub in v.items()}
                out["propertyOrdering"] = list(v)  # Gemini answers in this order (its schema guide)
            elif k in ("items", "anyOf"):
                out[k] = walk(v, path + "[]" if k == "items" else path)
            else:
                out[k] = v
        if "enum" in out and "type" not in out:
            out["type"] = "string"
        return out

    result: dict[str, Any] = walk(inline_refs(schema, name=name), "")
    return result


def schema_instruction(out: OutputType) -> str:
    """A system instruction that asks for JSON matching the schema, for hosts whose JSON mode takes no schema."""
    return ("Answer with one JSON value only, no prose and no Markdown, that matches this JSON schema:\n"
            + json.dumps(out.schema, separators=(",", ":")))


def parse_output(out: OutputType | None, result: Any) -> Any:
    """Validate ``result`` (a completion) against ``out`` and set its ``parsed``; the result as it is without
    ``out``.

    Raises:
        StructuredOutputError: The model refused, or its answer does not validate (``completion`` is ``result``).
    """
    if out is None:
        return result
    from pydantic import ValidationError

    where = {"provider": result.provider, "model": result.model, "request_id": result.request_id,
             "completion": result}
    if result.refusal:
        raise StructuredOutputError(f"the model refused: {result.refusal}", text=result.refusal,
                                    refusal=result.refusal, **where)
    try:
        result.parsed = out.validate(result.text)
    except ValidationError as e:
        errors = e.errors(include_url=False, include_input=False)
        raise StructuredOutputError(
            f"the answer does not fit {out.name}{_why(result)}: {len(errors)} validation error(s), first: "
            f"{errors[0]['msg'] if errors else e}", text=result.text, errors=errors, **where,
        ) from e
    return result


def _why(result: Any) -> str:
    # What the model did instead of answering, when it did not answer with JSON at all.
    if result.finish_reason == "length":
        return " (the answer was cut short: raise max_tokens)"
    if not (result.text or "").strip():
        calls = [c.name for c in result.tool_calls or []]
        if calls:
            return f" (the model called {', '.join(calls)} instead of answering)"
        if result.finish_reason == "content_filter":
            return " (the answer was withheld by the provider's content filter)"
        return " (the answer is empty)"
    return ""


def forced_tool(out: OutputType) -> dict[str, Any]:
    """The one tool a provider without a schema mode is made to call, in computekit's shorthand tool shape
    (``name``, ``description``, ``parameters``): its arguments are the answer."""
    return {"name": FORCED_TOOL_NAME, "description": f"Answer with a {out.name}.", "parameters": out.schema}


def forced_tool_answer(result: _C) -> _C:
    """``result`` with the forced tool's arguments as its text: the call was how the model answered, not a call
    for the application to run, so it is taken off ``tool_calls`` and the message (which stays valid to send
    back in a conversation)."""
    forced = [c for c in result.tool_calls if c.name == FORCED_TOOL_NAME]
    if forced:
        from ._types import Message

        result.text = forced[0].arguments
        result.tool_calls = [c for c in result.tool_calls if c.name != FORCED_TOOL_NAME]
        result.message = Message(role="assistant", content=result.text)
        if result.finish_reason == "tool_calls":
            result.finish_reason = "stop"
    return result
