"""Every pattern check in ``quotaguard.ibm`` and ``quotaguard.braket`` is anchored at both ends.

A regex ending in ``$`` also matches before a trailing newline, so ``re.match(r"^...$")``
let a CRN, an ARN, an id or an amount ending in ``"\\n"`` through (aiohttp then failed later,
or the value went out as sent). Each check below refuses a trailing newline and a control
character, naming the field; and a scan of the sources keeps ``.match`` and ``$`` out.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest

import quotaguard
from quotaguard.braket import checks as braket_checks
from quotaguard.errors import InvalidInput
from quotaguard.ibm import sansio as ibm_sansio
from quotaguard.ibm.work import IBMJob, parse_duration

ROOT = Path(quotaguard.__file__).parent
CRN = "crn:v1:bluemix:public:quantum-computing:us-east:a/acct:inst::"
FORTE = "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1"
TASK = "arn:aws:braket:us-east-1:123456789012:quantum-task/abc-1"
LIMIT = "arn:aws:braket:us-east-1:123456789012:spending-limit/abc-1"

CHECKS: list[tuple[str, Callable[[str], object], str, str]] = [
    ("crn", ibm_sansio.check_crn, CRN, "service_crn"),
    ("api-version", ibm_sansio.check_api_version, "2026-03-15", "api_version"),
    ("job-id", ibm_sansio.build_get_job, "job-1", "job_id"),
    ("session-id", ibm_sansio.build_get_session, "s-1", "session_id"),
    ("account-id", ibm_sansio.build_get_account, "acct-1", "account_id"),
    ("plan-id", lambda v: ibm_sansio.build_get_account("acct", v), "flex-1", "plan_id"),
    ("backend", lambda v: IBMJob(v), "ibm_torino", "backend"),
    ("duration", lambda v: parse_duration(v, "max_time"), "1h30m", "max_time"),
    ("device-arn", braket_checks.parse_device_arn, FORTE, "device_arn"),
    ("task-arn", braket_checks.check_task_arn, TASK, "quantum_task_arn"),
    ("limit-arn", braket_checks.check_spending_limit_arn, LIMIT, "spending_limit_arn"),
    ("amount", braket_checks.check_amount, "99.50", "amount"),
    ("region", braket_checks.check_region, "us-east-1", "region"),
]


@pytest.mark.parametrize(
    ("check", "valid", "field"), [c[1:] for c in CHECKS], ids=[c[0] for c in CHECKS]
)
def test_a_trailing_newline_or_a_control_character_is_refused(
    check: Callable[[str], object], valid: str, field: str
) -> None:
    check(valid)  # the valid value passes
    bad = [f"{valid[:3]}\x00{valid[3:]}"]
    # A duration is typed by a person: whitespace around it is trimmed, not refused.
    if field != "max_time":
        bad += [f"{valid}\n", f"{valid[:3]}\t{valid[3:]}"]
    for value in bad:
        with pytest.raises(InvalidInput) as info:
            check(value)
        assert info.value.field == field, value


def _sources() -> list[Path]:
    return sorted((*ROOT.glob("ibm/*.py"), *ROOT.glob("braket/*.py")))


def test_no_pattern_check_uses_match_or_a_dollar_anchor() -> None:
    found: list[str] = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "match":
                found.append(f"{path.name}:{node.lineno}: .match")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "compile"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and str(node.args[0].value).endswith("$")
            ):
                found.append(f"{path.name}:{node.lineno}: pattern ends in $")
    assert found == []
    assert len(_sources()) > 10  # the scan sees the modules
