"""The API fuzzing's summary, test-artifacts/fuzz-summary.json: cases run per operation and
status. Written by the process that ran the fuzzing, or, when pytest-xdist shared the
operations between processes, by the main process from every process's counts."""

import json
from collections import Counter
from pathlib import Path

SUMMARY = Path(__file__).resolve().parent.parent / "test-artifacts" / "fuzz-summary.json"


def write_fuzz_summary(examples, calls):
    """`calls`: {(operation, status): cases}."""
    per_operation = Counter()
    statuses = Counter()
    for (operation, status), n in calls.items():
        per_operation[operation] += n
        statuses[str(status)] += n
    SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    SUMMARY.write_text(
        json.dumps(
            {
                "examples_setting": examples,
                "cases": sum(per_operation.values()),
                "operations": len(per_operation),
                "fewest_cases": min(per_operation.values(), default=0),
                "statuses": dict(sorted(statuses.items())),
                "per_operation": dict(sorted(per_operation.items())),
            },
            indent=2,
        )
    )
