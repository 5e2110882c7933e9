"""Results read well: a one-line repr (what answered, a preview, tokens, cost) and an HTML view for notebooks."""

from __future__ import annotations

from decimal import Decimal

import computekit as ck
from computekit.testing import FakeProvider

LONG = "GPUs hum in the dark " * 20


def test_completion_repr_is_one_short_line() -> None:
    with FakeProvider([LONG], price_in="0.15", price_out="0.60") as fake:
        r = fake.client(ledger="none").complete("fake:m", "hi")
    text = repr(r)
    assert "\n" not in text
    assert len(text) < 160
    assert text.startswith("Completion(target=fake:m, text='GPUs hum in the dark")
    assert "…" in text
    assert f"tokens={r.usage.input_tokens}→{r.usage.output_tokens}" in text
    assert f"cost=${r.cost.total}" in text
    assert "raw" not in text
    html = r._repr_html_()
    assert html.startswith("<table>")
    assert LONG.strip()[:200] in html  # the notebook view shows much more of the text
    assert "price source" in html


def test_embeddings_repr_shows_the_shape_not_the_vectors() -> None:
    with FakeProvider(price_in="0.02", price_out="0") as fake:
        e = fake.client(ledger="none").embed("fake:m", ["a", "b", "c"])
    tokens = e.usage.input_tokens
    assert repr(e) == f"Embeddings(target=fake:m, vectors=3x{e.dimensions}, tokens={tokens}, cost=${e.cost.total})"
    assert f"3 x {e.dimensions} dimensions" in e._repr_html_()


def test_cost_repr_is_plain_money_and_unknown_is_not_zero() -> None:
    cost = ck.Cost(total=Decimal("8E-8"), price_source=ck.PriceSource(table="t", version="1"))
    assert repr(cost) == "Cost(total=$0.00000008, price_source=t 1)"
    assert repr(ck.Cost.unknown("no price")) == "Cost(total=None, reason='no price')"
    assert "$0.00000008" in cost._repr_html_()


def test_prediction_and_job_reprs() -> None:
    p = ck.Prediction(provider="replicate", model="acme/flux", id="p1", status="succeeded",
                      output=["https://example.com/out.png"], cost=ck.Cost(total=Decimal("0.0034")))
    assert repr(p) == ("Prediction(target=replicate:acme/flux, id='p1', status='succeeded', "
                       "output=\"['https://example.com/out.png']\", cost=$0.0034)")
    assert "<th" in p._repr_html_()
    job = ck.FineTuneJob(id="ftjob-1", provider="openai", base_model="gpt-4o-mini", status="running",
                         estimate=ck.Cost(total=Decimal("1.20")))
    assert repr(job) == "FineTuneJob(target=openai:gpt-4o-mini, id='ftjob-1', status='running', estimate=$1.20)"
    assert "the job has not ended" in job._repr_html_()


def test_html_is_escaped() -> None:
    with FakeProvider(["<script>alert(1)</script>"], price_in="1", price_out="1") as fake:
        r = fake.client(ledger="none").complete("fake:m", "hi")
    assert "<script>" not in r._repr_html_()
    assert "&lt;script&gt;" in r._repr_html_()
