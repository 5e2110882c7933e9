"""Data types: usage arithmetic, cost semantics (unknown is None, never 0), messages, tool calls."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

import computekit as ck
from computekit._types import sum_costs


def test_usage_total_tokens() -> None:
    assert ck.Usage(input_tokens=7, output_tokens=5).total_tokens == 12
    assert ck.Usage().total_tokens == 0


def test_usage_add_sums_every_counter() -> None:
    a = ck.Usage(input_tokens=10, output_tokens=4, cached_input_tokens=3, cache_write_tokens=2, reasoning_tokens=1,
                 input_audio_tokens=5, output_audio_tokens=6, units={"searches": Decimal("1.5")})
    b = ck.Usage(input_tokens=1, output_tokens=2, cached_input_tokens=1, cache_write_tokens=1, reasoning_tokens=2,
                 input_audio_tokens=1, output_audio_tokens=1, units={"searches": Decimal(2), "credits": Decimal(3)})
    s = a + b
    assert (s.input_tokens, s.output_tokens, s.cached_input_tokens, s.cache_write_tokens, s.reasoning_tokens) == (
        11, 6, 4, 3, 3)
    assert (s.input_audio_tokens, s.output_audio_tokens) == (6, 7)
    assert s.requests == 2
    assert s.units == {"searches": Decimal("3.5"), "credits": Decimal(3)}
    # The operands are not modified.
    assert a.units == {"searches": Decimal("1.5")}
    assert b.units == {"searches": Decimal(2), "credits": Decimal(3)}


def test_usage_add_optional_fields_stay_none_when_both_none() -> None:
    s = ck.Usage() + ck.Usage()
    assert s.gpu_seconds is None
    assert s.images is None
    assert s.hardware is None


def test_usage_add_optional_fields_when_one_side_has_them() -> None:
    s = ck.Usage(gpu_seconds=Decimal("2.5"), images=2, hardware="gpu-a100") + ck.Usage()
    assert s.gpu_seconds == Decimal("2.5")
    assert s.images == 2
    assert s.hardware == "gpu-a100"
    s2 = ck.Usage() + ck.Usage(gpu_seconds=Decimal("0.1"), images=1)
    assert s2.gpu_seconds == Decimal("0.1")
    assert s2.images == 1
    assert (s + s2).gpu_seconds == Decimal("2.6")


def test_usage_rejects_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        ck.Usage(input_tokenz=1)  # type: ignore[call-arg]


def test_cost_unknown_total_is_none_never_zero() -> None:
    c = ck.Cost.unknown("no price")
    assert c.total is None
    assert c.total != 0
    assert c.reason == "no price"
    assert c.currency == "USD"
    assert str(c) == "unpriced (no price)"


def test_cost_str() -> None:
    assert str(ck.Cost(total=Decimal("0.00012"))) == "$0.00012"
    assert str(ck.Cost(total=Decimal("1.5"), estimated=True)) == "$1.5 (estimated)"
    assert str(ck.Cost(total=None)) == "unpriced"


def test_cost_total_is_a_decimal() -> None:
    c = ck.Cost(total="0.1")  # type: ignore[arg-type]
    assert isinstance(c.total, Decimal)
    assert c.total == Decimal("0.1")


def test_sum_costs_exact() -> None:
    costs = [ck.Cost(total=Decimal("0.1")) for _ in range(10)]
    assert sum_costs(costs) == Decimal("1.0")  # float would give 0.9999999999999999


def test_sum_costs_unknown_poisons_the_sum() -> None:
    assert sum_costs([ck.Cost(total=Decimal(1)), ck.Cost.unknown("x")]) is None
    assert sum_costs([ck.Cost(total=Decimal(1)), None]) is None


def test_sum_costs_empty_is_zero() -> None:
    assert sum_costs([]) == Decimal(0)


def test_price_source_str() -> None:
    ps = ck.PriceSource(table="genai-prices", version="0.2.3", as_of=dt.date(2025, 1, 2))
    assert str(ps) == "genai-prices 0.2.3 (as of 2025-01-02)"
    assert str(ck.PriceSource(table="config")) == "config"


def test_message_text_str_and_parts() -> None:
    assert ck.Message(role="user", content="hi").text == "hi"
    assert ck.Message(role="assistant").text == ""
    m = ck.Message(role="user", content=[
        {"type": "text", "text": "look at "},
        {"type": "image_url", "url": "https://example.com/a.png"},
        {"type": "text", "text": "this"},
    ])
    assert isinstance(m.content, list)
    assert isinstance(m.content[1], ck.ImagePart)
    assert m.text == "look at this"


def test_message_rejects_bad_role_and_part() -> None:
    with pytest.raises(ValidationError):
        ck.Message(role="robot", content="x")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        ck.Message(role="user", content=[{"type": "audio", "data": "..."}])  # type: ignore[list-item]


def test_tool_call_parsed_arguments() -> None:
    tc = ck.ToolCall(id="call_1", name="weather", arguments='{"city": "Paris", "days": 3}')
    assert tc.parsed_arguments() == {"city": "Paris", "days": 3}
    assert ck.ToolCall(id="c", name="n").parsed_arguments() == {}


def test_tool_call_invalid_json_raises_value_error() -> None:
    with pytest.raises(ValueError):
        ck.ToolCall(id="c", name="n", arguments='{"city": ').parsed_arguments()


def test_attempt_target() -> None:
    a = ck.Attempt(provider="openai", model="gpt-4o-mini", outcome="success", started_at=dt.datetime.now(dt.UTC))
    assert a.target == "openai:gpt-4o-mini"


def test_completion_defaults_and_target() -> None:
    c = ck.Completion(provider="openai", model="gpt-4o-mini")
    assert c.target == "openai:gpt-4o-mini"
    assert c.cost.total is None  # not priced yet is unknown, not free
    assert c.text == ""
    assert c.tool_calls == []
    assert "raw" not in repr(c)


def test_embeddings_dimensions() -> None:
    assert ck.Embeddings(provider="p", model="m").dimensions == 0
    e = ck.Embeddings(provider="p", model="m", vectors=[[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    assert e.dimensions == 3
    assert "0.1" not in repr(e)  # vectors are kept out of the repr


def test_not_given_is_falsy_and_distinct_from_none() -> None:
    assert not ck.NOT_GIVEN
    assert ck.NOT_GIVEN is not None
    assert repr(ck.NOT_GIVEN) == "NOT_GIVEN"


def _models_with_privates() -> list[type]:
    from computekit._background import BackgroundResponse
    from computekit._types import _Model

    assert issubclass(BackgroundResponse, _Model)  # a result type defined outside _types, loaded for the walk

    found, todo = [], [_Model]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__private_attributes__:
            found.append(cls)
    return found


def test_private_attributes_start_as_pydantics_own_set_up_starts_them() -> None:
    from pydantic._internal._model_construction import init_private_attributes

    classes = _models_with_privates()
    assert {"Attempt", "Completion", "Prediction", "BackgroundResponse"} <= {cls.__name__ for cls in classes}
    for cls in classes:
        ours, theirs = cls.__new__(cls), cls.__new__(cls)
        cls.model_post_init(ours, None)
        init_private_attributes(theirs, None)
        assert ours.__pydantic_private__ == theirs.__pydantic_private__, cls
        again = cls.__new__(cls)
        cls.model_post_init(again, None)
        assert again.__pydantic_private__ is not ours.__pydantic_private__, cls  # each object its own


def test_an_objects_private_attributes_are_its_own() -> None:
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    a = ck.Attempt(provider="p", model="m", outcome="success", started_at=when)
    b = ck.Attempt(provider="p", model="m", outcome="success", started_at=when)
    a._response_id = "resp_1"
    assert (a._response_id, b._response_id) == ("resp_1", None)
    c = ck.Completion(provider="p", model="m")
    assert c._usage_reported is True
    c._usage_reported = False
    assert ck.Completion(provider="p", model="m")._usage_reported is True
    assert c.model_copy()._usage_reported is False  # a copy keeps the original's


def _state(obj: Any) -> Any:
    """Everything pydantic keeps on a model object, field values by exact type and digits, in order."""
    values = [(k, type(v), v.as_tuple() if isinstance(v, Decimal) else v) for k, v in vars(obj).items()]
    return (type(obj), values, obj.__pydantic_fields_set__, obj.__pydantic_extra__, obj.__pydantic_private__,
            repr(obj), str(obj), obj.model_dump(), obj.model_dump_json())


def test_pricings_unvalidated_builds_are_what_validation_builds() -> None:
    """Pricing builds its lines and costs without validating values it made itself: the objects are the ones
    the public constructors make, and behave alike afterwards (copies, assignment, nesting)."""
    import copy

    unit_price = ck.Money(Decimal("0.15") / Decimal(1_000_000))
    quantity = Decimal(1234)
    source = ck.PriceSource(table="t", version="1", as_of=dt.date(2026, 1, 2), url="https://example.com")
    fast_line = ck.CostLine._priced("input", quantity, "token", unit_price, ck.Money(quantity * unit_price))
    line = ck.CostLine(item="input", quantity=quantity, unit="token", unit_price=unit_price,
                       amount=quantity * unit_price)
    assert _state(fast_line) == _state(line)
    fast = ck.Cost._priced(ck.Money(Decimal(0) + fast_line.amount), [fast_line], source)
    cost = ck.Cost(total=Decimal(0) + line.amount, lines=[line], price_source=source)
    assert _state(fast) == _state(cost)
    assert _state(fast.model_copy()) == _state(cost.model_copy())
    assert _state(copy.deepcopy(fast)) == _state(copy.deepcopy(cost))
    assert _state(ck.Cost.model_validate(fast.model_dump())) == _state(ck.Cost.model_validate(cost.model_dump()))
    done = ck.Completion(provider="p", model="m", cost=fast)
    assert done.cost is fast
    assert done.model_dump() == ck.Completion(provider="p", model="m", cost=cost).model_dump()
    fast.reason, cost.reason = "changed", "changed"
    fast_line.item, line.item = "other", "other"
    assert _state(fast) == _state(cost)
    assert fast.__pydantic_fields_set__ == {"total", "lines", "price_source", "reason"}


def test_an_unknown_cost_is_what_validation_builds() -> None:
    fast = ck.Cost.unknown("no price known for p:m")
    assert _state(fast) == _state(ck.Cost(total=None, reason="no price known for p:m"))
    assert fast.lines == []
    assert fast.lines is not ck.Cost.unknown("again").lines  # each its own list
    assert _state(ck.Completion(provider="p", model="m").cost) == _state(ck.Cost(total=None, reason="not priced yet"))
    with pytest.raises(ValidationError):
        ck.Cost.unknown(7)  # type: ignore[arg-type]
