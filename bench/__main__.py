"""Run every benchmark side by side and print the figures and ratios as JSON lines.

Targets live here, never in unit tests: a loaded CI machine would make timed tests flaky.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from collections.abc import Callable
from typing import Any

SUITES: list[tuple[str, str, str]] = [
    ("admission.memory", "bench.admission", "memory_admission"),
    ("admission.sqlite_4_processes", "bench.admission", "sqlite_admission"),
    ("scaling.outstanding_100_vs_100000", "bench.admission", "scaling"),
    ("redis_ledger", "bench.redis_ledger", "run"),
    ("postgres_ledger", "bench.postgres_ledger", "run"),
    ("guard_overhead", "bench.overhead", "run"),
    ("observability", "bench.telemetry", "run"),
    ("braket_client", "bench.braket_client", "run"),
    ("ibm_client", "bench.ibm_client", "run"),
]


def main(argv: list[str]) -> int:
    wanted = set(argv)
    failures = 0
    for name, module, func in SUITES:
        if wanted and not any(name.startswith(w) for w in wanted):
            continue
        started = time.perf_counter()
        try:
            fn: Callable[[], dict[str, Any]] = getattr(importlib.import_module(module), func)
            result = fn()
        except Exception as exc:  # report and go on: one broken bench must not hide the rest
            failures += 1
            result = {"error": f"{type(exc).__name__}: {exc}"}
        result["seconds"] = round(time.perf_counter() - started, 1)
        print(json.dumps({"bench": name, **result}), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
