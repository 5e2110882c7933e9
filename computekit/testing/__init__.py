"""Testing your application with computekit: record its provider calls once and replay them (with costs),
or answer them with a scripted fake.

- The pytest plugin (installed with computekit, inactive until used): ``@pytest.mark.computekit_cassette``,
  the ``computekit_spend`` and ``computekit_fake`` fixtures, and a per-test cost summary.
- :class:`FakeProvider`: ``fake:`` models for fully offline unit tests, through the real client path.
- :class:`Spend`: what a block of code spent, with ``assert_cost(max_usd=...)``.
- :func:`cassette_config`: vcrpy settings that keep secrets out of any cassette.

See the "Testing your app" page of the documentation.
"""

from ._fake import Fail, FakeCall, FakeProvider, Reply, Run, ScriptExhaustedError
from ._filters import LeakedSecretError, Scrubber, cassette_config, scan
from ._spend import Spend

__all__ = [
    "Fail",
    "FakeCall",
    "FakeProvider",
    "LeakedSecretError",
    "Reply",
    "Run",
    "ScriptExhaustedError",
    "Scrubber",
    "Spend",
    "cassette_config",
    "scan",
]
