"""A daily cost report with a plot: tag the calls, then read the spend back by day and by tag, and draw it.

The example makes four tagged calls (two on OpenAI, two on Anthropic; ``tags={"feature": ...}``) into a ledger of
its own, in a temporary file, then prints the spend by day and by feature, and writes the cost-per-day chart
(stacked by provider) and, with ``--html``, a self-contained HTML report. In your application, point the same
code at your own ledger (``ck.Client()`` reads ``[ledger]`` from your config) to report on every call it made.

    # live: OPENAI_API_KEY, ANTHROPIC_API_KEY
    python examples/daily_report.py --plot out.png --html report.html
    # offline; the chart in a temporary folder
    python examples/_replay.py examples/daily_report.py

The chart and the HTML report need matplotlib: ``pip install 'computekit[plot]'``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import computekit as ck


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--plot",
        metavar="PATH",
        help="write the cost-per-day chart here (.png, .svg or .pdf; default: in a temporary folder)",
    )
    parser.add_argument(
        "--html", metavar="PATH", help="also write a self-contained HTML report here"
    )
    return parser.parse_args()


# --8<-- [start:main]
CALLS = [  # (model, feature tag, prompt)
    (
        "openai:gpt-4o-mini",
        "search",
        "Rewrite as a search query: cheap flights to Lisbon in May",
    ),
    (
        "anthropic:claude-haiku-4-5",
        "support",
        "A customer says their order arrived damaged. Reply in one sentence.",
    ),
    (
        "openai:gpt-4o-mini",
        "support",
        "Classify this ticket as billing, shipping or other: 'Where is my parcel?'",
    ),
    (
        "anthropic:claude-haiku-4-5",
        "search",
        "Suggest three related searches for 'standing desk'.",
    ),
]


def main() -> None:
    args = options()
    plot = args.plot or str(
        Path(tempfile.mkdtemp(prefix="daily-report-")) / "daily-cost.png"
    )
    with (
        tempfile.TemporaryDirectory() as tmp,
        ck.Client(ledger=f"sqlite:///{Path(tmp) / 'ledger.db'}") as client,
    ):
        for model, feature, prompt in CALLS:
            r = client.complete(
                model, prompt, max_tokens=100, tags={"feature": feature}
            )
            print(f"{model:<28} feature={feature:<8} cost: {r.cost.total} USD")

        by_day = client.ledger.report(by="day")
        print("\nspend by day (UTC):")
        for row in by_day.rows:
            print(f"  {row.key}  {row.calls} calls  {row.cost} USD")
        print(f"  total: {by_day.total} USD")

        by_feature = client.ledger.report(by="tag:feature")
        print("\nspend by feature:")
        for row in by_feature.rows:  # the most expensive first
            print(f"  {row.key:<10} {row.calls} calls  {row.cost} USD")
        print(f"  total: {by_feature.total} USD")

        calls = client.ledger.calls()
        calls.plot(
            plot, title="Cost per day"
        )  # a matplotlib Figure, drawn without pyplot
        print(f"\nwrote {plot}")
        if args.html:
            calls.to_html(args.html, by="tag:feature")
            print(f"wrote {args.html}")


# --8<-- [end:main]


if __name__ == "__main__":
    main()
