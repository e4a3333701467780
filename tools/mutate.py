"""Curated mutants of the money path: each one must make a targeted test subset fail.

Run by hand (``nox -s mutate``, or ``python tools/mutate.py`` in an environment with the test
dependencies), never in CI: it runs a pytest subset per mutant. The repository is copied once
to a temporary directory (tracked and untracked files, minus build and virtualenv folders);
each mutant replaces one exact source snippet there, runs its tests with ``-x -q`` under a
timeout, and restores the file. The working tree is never touched.

Each test subset first runs unmutated (a failure there is not a kill). A mutant is *killed*
when its tests fail (or time out), *survived* when they pass. The exit status is 2 when a
mutant's snippet is not found exactly once (the list must follow the code, not rot silently),
3 when a subset fails unmutated, 1 when a mutant survived, 0 otherwise.

    python tools/mutate.py                 # every mutant
    python tools/mutate.py -k renew -k ibm # those whose name contains any of the words
    python tools/mutate.py --list          # names and tests only, checking every snippet
    python tools/mutate.py --ignore=tests/x.py  # other options are passed to pytest
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MUTANTS", "Mutant", "main"]

ROOT = Path(__file__).resolve().parent.parent
SKIP_DIRS = {".git", ".nox", ".venv", "site", "build", "dist", "__pycache__", ".mypy_cache"}
SKIP_DIRS |= {".ruff_cache", ".pytest_cache", ".hypothesis", "htmlcov"}
TIMEOUT = 240.0  # seconds per mutant; a hang counts as killed (reported as "timeout")

ENGINE = ("tests/engine", "tests/ledger")
LEDGER = ("tests/ledger",)
GUARD = ("tests/guard",)
IBM = ("tests/ibm", "tests/guard/test_ibm_instance_limit.py")
BRAKET = ("tests/braket", "tests/guard")
SECRETS = ("tests/ibm", "tests/reliability/test_secrets.py", "tests/test_url_secrets.py")


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


def m(name: str, path: str, old: str, new: str, tests: Sequence[str]) -> Mutant:
    return Mutant(name, path, old, new, tuple(tests))


E, L, G = "quotaguard/engine/", "quotaguard/ledger/", "quotaguard/guard/"
LUA = L + "redis/lua/"

MUTANTS: tuple[Mutant, ...] = (
    # -- engine: amounts, rules, reservations, windows -----------------------------------
    m("amount-negative-accepted", E + "amounts.py",
      "    if amount < 0:\n", "    if amount < -1:\n", ENGINE),
    m("charge-rounds-down", E + "amounts.py",
      "ROUND_CEILING if round_up else ROUND_FLOOR", "ROUND_FLOOR if round_up else ROUND_FLOOR",
      ENGINE),
    m("limit-rounds-up", E + "rules.py",
      "left = to_micro(budget.limit, round_up=False)", "left = to_micro(budget.limit)", ENGINE),
    m("report-ignored-in-used", E + "rules.py",
      "return max(local, usage.reported + usage.since_report + usage.reserved - usage.inside)",
      "return local", ENGINE),
    m("reserved-ignored-after-report", E + "rules.py",
      "usage.reported + usage.since_report + usage.reserved - usage.inside)",
      "usage.reported + usage.since_report)", ENGINE),
    m("inside-taken-twice", E + "rules.py",
      "usage.reserved - usage.inside)", "usage.reserved - 2 * usage.inside)", ENGINE),
    m("remaining-off-by-one", E + "rules.py",
      "        if amount > left:\n", "        if amount > left + 1:\n", ENGINE),
    m("old-report-counts", E + "rules.py",
      "return start is None or reported_at >= start", "return True", ENGINE),
    m("fixed-window-end-inclusive", E + "windows.py",
      "return self.start <= now < self.end", "return self.start <= now <= self.end", ENGINE),
    m("rolling-window-a-day-short", E + "windows.py",
      "return (now - timedelta(days=self.days), None)",
      "return (now - timedelta(days=self.days - 1), None)", ENGINE),
    m("expired-sent-frees-key", E + "reservations.py",
      "        return sent  # sent work", "        return False  # sent work", LEDGER),
    m("lapsed-unsent-owed", E + "reservations.py",
      "return state is _EXPIRED and sent", "return state is _EXPIRED", LEDGER),
    m("fingerprint-not-normalised", E + "reservations.py",
      "(c.budget, c.unit.value, to_micro(c.amount))", "(c.budget, c.unit.value, str(c.amount))",
      LEDGER),
    m("any-charges-replay", E + "reservations.py",
      "return len(a) == len(b) and charges_key(a) == charges_key(b)", "return True", LEDGER),
    # -- ledgers: memory, sqlite, redis lua, base checks ---------------------------------
    m("memory-remaining-off-by-one", L + "memory.py",
      "amount > account.limit_micro() - account.used(now)\n",
      "amount > account.limit_micro() - account.used(now) + 1\n", LEDGER),
    m("memory-first-budget-only", L + "memory.py",
      "for k, amount in requested.items():\n            # evaluate()'s rule",
      "for k, amount in list(requested.items())[:1]:\n            # evaluate()'s rule", LEDGER),
    m("memory-lease-end-exclusive", L + "memory.py",
      "while self._leases and self._leases[0][0] <= cutoff:",
      "while self._leases and self._leases[0][0] < cutoff:", LEDGER),
    m("memory-renew-many-noop", L + "memory.py",
      "renewed.append(self._move_lease(reservation, until))", "renewed.append(reservation)",
      LEDGER),
    m("memory-older-report-wins", L + "accounts.py",
      "if self.reported_at is not None and at < self.reported_at:", "if False:", LEDGER),
    m("memory-inside-kept-after-end", L + "accounts.py",
      "        if old is not None and self.is_inside(old[0]):\n            self.inside -= old[1]\n"
      "\n    def report", "\n    def report", LEDGER),
    m("sqlite-first-budget-only", L + "sqlite/ledger.py",
      "violations = evaluate(requested, budgets, usage, now)",
      "violations = evaluate(dict(list(requested.items())[:1]), budgets, usage, now)", LEDGER),
    m("sqlite-lease-end-exclusive", L + "sqlite/schema.py",
      "WHERE state = 'held' AND lease_expires_at <= ?",
      "WHERE state = 'held' AND lease_expires_at < ?", LEDGER),
    m("sqlite-commits-outside-window", L + "sqlite/schema.py",
      'FROM commits WHERE budget = ? AND at >= ? AND at < ?"',
      'FROM commits WHERE budget = ? AND at >= ? - 1 AND at <= ?"', LEDGER),
    m("sqlite-since-by-commit-time", L + "sqlite/schema.py",
      "_SINCE_FLOOR if covers else _SINCE", "_SINCE", LEDGER),
    m("redis-remaining-off-by-one", LUA + "reserve.lua",
      "elseif amounts[i] > tonumber(b.limit_micro) - used(u) then",
      "elseif amounts[i] > tonumber(b.limit_micro) - used(u) + 1 then", LEDGER),
    m("redis-first-budget-only", LUA + "reserve.lua",
      "local admit, usages = true, {}\nfor i = 1, n do",
      "local admit, usages = true, {}\nfor i = 1, math.min(n, 1) do", LEDGER),
    m("redis-any-fingerprint-replays", LUA + "reserve.lua",
      "redis.call('HGET', P .. 'r:' .. existing, 'fp') == fp and 'replay' or 'conflict'",
      "'replay'", LEDGER),
    m("redis-report-ignored", LUA + "usage.lua",
      "  return math.max(here, u[4] + u[5] + u[2] - u[8])", "  return here", LEDGER),
    m("redis-inside-not-kept-at-bind", LUA + "bind.lua",
      "      if delta ~= 0 then redis.call('HINCRBY', bkey, 'inside', fmt(delta)) end\n", "",
      LEDGER),
    m("lease-zero-accepted", L + "checks.py",
      "if type(lease) is timedelta and _ZERO < lease <= MAX_LEASE:",
      "if type(lease) is timedelta and _ZERO <= lease <= MAX_LEASE:", LEDGER),
    m("idempotency-key-control-chars", L + "checks.py",
      "not 1 <= len(key) <= 256 or not key.isprintable():", "not 1 <= len(key) <= 256:", LEDGER),
    m("system-clock-skew-unchecked", L + "base.py",
      "if abs(now - ledger_time) > self.max_skew:", "if False:", LEDGER),
    # -- the guard: sending, settlement, adapters ----------------------------------------
    m("watch-no-renewal", G + "settlement.py",
      "renewed += len(await self.ledger.renew_many(batch, lease=self.lease, now=now))",
      "pass", GUARD),
    m("watch-in-doubt-not-renewed", G + "settlement.py",
      "if (r.external_id is not None or r.in_doubt_since is not None)\n                and",
      "if (r.external_id is not None)\n                and", GUARD),
    m("in-doubt-released-without-report", G + "settlement.py",
      "if reported_at is None or reported_at < after:", "if reported_at is None:", GUARD),
    m("in-doubt-released-before-lease", G + "settlement.py",
      "if now >= since + self.lease and await self._reported_since(",
      "if await self._reported_since(", GUARD),
    m("send-failure-releases", G + "sending.py",
      "        if provably_unsent(exc):\n            await self._wait(self._release(reservation))\n"
      "        else:",
      "        if True:\n            await self._wait(self._release(reservation))\n        else:",
      (*GUARD, "tests/reliability/test_provider_faults.py")),
    m("5xx-provably-unsent", G + "sending.py",
      "exc.status is not None and exc.status < 500", "exc.status is not None and exc.status < 600",
      (*GUARD, "tests/reliability/test_provider_faults.py")),
    m("no-job-id-released", G + "sending.py",
      "marked = await self._wait(self._mark_in_doubt(reservation, why, level=level))",
      "marked = await self._wait(self._release(reservation))", GUARD),
    m("stale-state-served-forever", G + "cache.py",
      "if self._fetched_at is not None and now - self._fetched_at <= self.max_staleness:",
      "if self._fetched_at is not None:", (*GUARD, "tests/test_cache.py")),
    m("braket-fail-open-when-closed", G + "braket_adapter.py",
      "                if not fail_open:\n                    raise\n                # Admit",
      "                if False:\n                    raise\n                # Admit",
      (*GUARD, "tests/reliability/test_provider_faults.py")),
    m("ibm-fail-open-when-closed", G + "ibm_adapter.py",
      "                if not fail_open:\n                    raise\n                usage =",
      "                if False:\n                    raise\n                usage =",
      (*GUARD, "tests/reliability/test_provider_faults.py")),
    # -- provider rules ------------------------------------------------------------------
    m("ibm-ceiling-ignores-cap", "quotaguard/ibm/rules.py",
      "    return Decimal(min(met, cap))", "    return Decimal(met)", IBM),
    m("ibm-ceiling-zero-unset", "quotaguard/ibm/rules.py",
      "        return Decimal(cap)  # unset, or invalid",
      "        return Decimal(0)  # unset, or invalid", IBM),
    m("braket-queued-spend-dropped", "quotaguard/braket/rules.py",
      "return limit.total_spend + limit.queued_spend", "return limit.total_spend", BRAKET),
    m("braket-limit-floor-ignores-queued", "quotaguard/braket/rules.py",
      "floor = current.total_spend + current.queued_spend", "floor = current.total_spend",
      ("tests/braket",)),
    # -- secrets -------------------------------------------------------------------------
    m("secret-repr-reveals", "quotaguard/ibm/auth.py",
      "return \"Secret('**********')\"", "return f\"Secret({self._value!r})\"", SECRETS),
)  # fmt: skip


def check(mutants: Sequence[Mutant], root: Path) -> list[str]:
    """A line per mutant whose snippet is not in its file exactly once."""
    stale = []
    for mutant in mutants:
        path = root / mutant.path
        found = path.read_text().count(mutant.old) if path.exists() else -1
        if found != 1:
            where = "file missing" if found < 0 else f"snippet found {found} times"
            stale.append(f"{mutant.name}: {mutant.path}: {where}")
    return stale


def copy_repo(dest: Path) -> None:
    def ignore(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if n in SKIP_DIRS or n.endswith((".pyc", ".sqlite3"))}

    shutil.copytree(ROOT, dest, ignore=ignore, symlinks=True)


def pytest(copy: Path, cmd: Sequence[str], tests: Sequence[str], timeout: float) -> tuple[str, str]:
    """Run the pytest command line ``cmd`` on ``tests`` in the copy: ``passed``, ``failed``,
    ``timeout`` or ``exit N``, and the first failing test's id (what killed a mutant)."""
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        done = subprocess.run(  # noqa: S603 - our interpreter, our arguments
            [*cmd, *tests],
            cwd=copy,
            env=env,
            timeout=timeout,
            capture_output=True,
            text=True,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "timeout", ""
    failed = [
        ln.split()[1] for ln in done.stdout.splitlines() if ln.startswith(("FAILED", "ERROR"))
    ]
    by = failed[0] if failed else ""
    if done.returncode == 0:
        return "passed", by
    return ("failed" if done.returncode == 1 else f"exit {done.returncode}"), by


def run(mutant: Mutant, copy: Path, cmd: Sequence[str], timeout: float) -> tuple[str, str, float]:
    path = copy / mutant.path
    original = path.read_text()
    path.write_text(original.replace(mutant.old, mutant.new, 1))
    start = time.monotonic()
    try:
        outcome, by = pytest(copy, cmd, mutant.tests, timeout)
    finally:
        path.write_text(original)
    verdict = "survived" if outcome == "passed" else "killed"
    if outcome not in ("passed", "failed"):
        verdict += f" ({outcome})"
    return verdict, by, time.monotonic() - start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", action="append", default=[], help="run mutants named like this")
    parser.add_argument("--list", action="store_true", help="check and list, run nothing")
    parser.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds per mutant")
    parser.add_argument("--python", default=sys.executable, help="the interpreter for pytest")
    args, extra = parser.parse_known_args(argv)
    # What pytest runs with: the options the command line left over (--ignore=...) too.
    pytest_cmd = [args.python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *extra]
    chosen = [x for x in MUTANTS if not args.k or any(k in x.name for k in args.k)]
    stale = check(MUTANTS, ROOT)  # every mutant, chosen or not: none may rot
    for line in stale:
        print(f"STALE {line}", file=sys.stderr)
    if stale:
        return 2
    if args.list:
        for x in chosen:
            print(f"{x.name:36} {x.path}  [{' '.join(x.tests)}]")
        return 0
    width = max(len(x.name) for x in chosen)
    survivors, broken = 0, 0
    with tempfile.TemporaryDirectory(prefix="qg-mutate-") as tmp:
        copy = Path(tmp) / "repo"
        copy_repo(copy)
        probe = subprocess.run(  # noqa: S603 - our interpreter, our arguments
            [args.python, "-c", "import quotaguard; print(quotaguard.__file__)"],
            cwd=copy, env={**os.environ, "PYTHONPATH": str(copy)},
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        if not probe.stdout.strip().startswith(str(copy)):
            print(f"the copy is not what pytest imports: {probe.stdout}", file=sys.stderr)
            return 2
        # Each test subset must pass unmutated, or its failures would count as kills.
        baseline = {}
        for tests in dict.fromkeys(x.tests for x in chosen):
            outcome, by = pytest(copy, pytest_cmd, tests, args.timeout)
            baseline[tests] = outcome
            if outcome != "passed":
                print(f"BASELINE {outcome}: {' '.join(tests)} {by}", file=sys.stderr)
        print(f"{'mutant':{width}}  {'result':24} {'seconds':>7}  killed by")
        for mutant in chosen:
            if baseline[mutant.tests] != "passed":
                broken += 1
                print(f"{mutant.name:{width}}  {'not run (baseline fails)':24}", flush=True)
                continue
            verdict, by, seconds = run(mutant, copy, pytest_cmd, args.timeout)
            survivors += verdict == "survived"
            print(f"{mutant.name:{width}}  {verdict:24} {seconds:7.1f}  {by}", flush=True)
    ran = len(chosen) - broken
    killed = ran - survivors
    print(f"score: {killed}/{ran} killed ({100 * killed / max(ran, 1):.0f}%)", end="")
    print(f"; {broken} not run, their tests failing unmutated" if broken else "")
    if broken:
        return 3
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
