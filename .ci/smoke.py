"""Smoke test of an installed wheel (run by .ci/run with the wheel's venv, from outside the checkout).

It must import the installed package, not the checkout: a first call on a fake provider, priced and written to a
throwaway ledger, with no optional package installed.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import computekit as ck
from computekit.testing import FakeProvider

OPTIONAL = ("openai", "anthropic", "cohere", "replicate", "httpx", "matplotlib", "pandas")

where = Path(ck.__file__).resolve()
assert "site-packages" in where.parts, f"imported from {where}, not an installed wheel"
assert ck.__version__, "no version"
loaded = [m for m in OPTIONAL if m in sys.modules]
assert not loaded, f"import computekit loaded optional packages: {loaded}"

with tempfile.TemporaryDirectory() as tmp, FakeProvider(["hello from the wheel"], price_in="1", price_out="2") as fake:
    client = fake.client(ledger=f"sqlite:///{Path(tmp) / 'ledger.db'}")
    r = client.complete("fake:model", "hi")
    assert r.text == "hello from the wheel", r.text
    assert r.cost.total is not None, r.cost
    assert r.cost.total > 0, r.cost
    assert len(client.ledger.rows()) == 1
    client.close()
    client.ledger.close()
print(f"computekit {ck.__version__} from {where.parent}: ok")
