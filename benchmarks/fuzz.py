"""Long fuzzing runs of every parser of outside input (the harnesses of tests/fuzz).

    .venv/bin/python benchmarks/fuzz.py --examples 5000            # every parser
    .venv/bin/python benchmarks/fuzz.py --examples 20000 --parsers mqtt_manifest,model_file --seed 7

For each parser: inputs tried, failures (distinct exception type and place; each is an input
for which the product raised something other than a one-line `KeywireError`), and seconds.
The first input of each failure is printed so it can be turned into a regression test.
Exit status 1 when anything failed. The in-suite tests run the same harnesses for seconds.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402

from tests.fuzz.harnesses import HARNESSES, failure_of  # noqa: E402


def fuzz(name: str, examples: int, seed_value: int) -> dict:
    """Run one harness for `examples` inputs; failures are recorded, not raised."""
    h = HARNESSES[name]
    tried = 0
    failures: dict[str, str] = {}

    @seed(seed_value)
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(h.strategy())
    def run(value) -> None:
        nonlocal tried
        tried += 1
        failure = failure_of(h, value)
        if failure is not None and failure not in failures:
            failures[failure] = repr(value)[:300]

    start = time.perf_counter()
    run()
    return {"parser": name, "inputs": tried, "failures": failures, "seconds": round(time.perf_counter() - start, 1)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", type=int, default=2000, help="inputs per parser")
    p.add_argument("--parsers", default=",".join(HARNESSES), help="comma-separated: " + ", ".join(HARNESSES))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true", help="one JSON object per parser")
    a = p.parse_args()
    logging.basicConfig(level=logging.CRITICAL)  # the product logs every rejected input
    names = [n.strip() for n in a.parsers.split(",") if n.strip()]
    unknown = [n for n in names if n not in HARNESSES]
    if unknown:
        print(f"fuzz.py: unknown parser(s) {', '.join(unknown)}", file=sys.stderr)
        return 2
    results = []
    if not a.json:
        print(f"{'parser':<20} {'inputs':>8} {'failures':>9} {'seconds':>8}")
    for name in names:
        r = fuzz(name, a.examples, a.seed)
        results.append(r)
        if a.json:
            print(json.dumps(r), flush=True)
        else:
            print(f"{name:<20} {r['inputs']:>8} {len(r['failures']):>9} {r['seconds']:>8}", flush=True)
            for failure, example in r["failures"].items():
                print(f"    {failure}\n      input: {example}")
    if not a.json:
        print(f"{'total':<20} {sum(r['inputs'] for r in results):>8} "
              f"{sum(len(r['failures']) for r in results):>9} {sum(r['seconds'] for r in results):>8.1f}")
    return 1 if any(r["failures"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
