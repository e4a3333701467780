"""Every Braket operation the emulator serves answers in botocore's output shape.

The operations are read from the routes the emulator registers (``braket.<Operation>``), so an
operation added later is walked too: it is called through a stock boto3 client with arguments
built from botocore's input shape (``ARGUMENTS`` adds the few a call needs to be interesting),
and its raw JSON body is checked against the output shape member by member
(:func:`tests._support.shapes.body_mismatches`). botocore's own parser would not notice a
missing required member.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.session
from aiohttp import web
from botocore import xform_name
from botocore.exceptions import ClientError
from botocore.model import OperationModel, Shape, StructureShape

from quotaguard.braket import BraketClient
from quotaguard.braket.models import TimePeriod
from quotaguard.testing import Emulator, FakeClock
from tests._support.braket import ACTION, FORTE, SV1
from tests._support.shapes import body_mismatches

AQUILA = "arn:aws:braket:us-east-1::device/qpu/quera/Aquila"
MODEL = botocore.session.get_session().get_service_model("braket")
#: Run order by verb: what creates comes first, what ends or deletes last.
_ORDER = ("Create", "Get", "Search", "List", "Tag", "Update", "Untag", "Cancel", "Delete")


def served_operations() -> list[str]:
    """The Braket operations the emulator registers routes for (both spellings are one)."""
    app = web.Application()
    Emulator(clock=FakeClock()).braket.add_routes(app)
    names = {
        name.removeprefix("braket.").split(".", 1)[0]
        for name in app.router.named_resources()
        if name.startswith("braket.")
    }
    return sorted(
        names,
        key=lambda op: (
            next((i for i, verb in enumerate(_ORDER) if op.startswith(verb)), len(_ORDER)),
            op,
        ),
    )


# -- arguments -------------------------------------------------------------------------------


def _value(name: str, shape: Shape, ctx: dict[str, Any]) -> Any:
    """A value for member ``name``: the scenario's (``ctx``) when it has one, else the
    smallest the model allows."""
    if name in ctx:
        return ctx[name]
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(shape, StructureShape)
        return {m: _value(m, shape.members[m], ctx) for m in shape.required_members}
    if kind == "list":
        return [_value(name, shape.member, ctx)]  # type: ignore[attr-defined]
    if kind == "map":
        return {}
    if kind in ("integer", "long"):
        return max(int(shape.metadata.get("min", 1)), 1)
    if kind == "boolean":
        return False
    if kind == "timestamp":
        return datetime(2026, 1, 1, tzinfo=UTC)
    if shape.enum:
        return shape.enum[0]
    return "x" * max(int(shape.metadata.get("min", 1)), 1)


def arguments(op: OperationModel, ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """The calls made of ``op``: each with every required member, plus ``ARGUMENTS``'s."""
    extra = ARGUMENTS.get(op.name, lambda _: [{}])(ctx)
    shape = op.input_shape
    required = (
        {}
        if shape is None
        else {
            m: _value(m, shape.members[m], ctx)
            for m in shape.required_members
            if m != "clientToken"  # boto3 fills it in, as it does for users
        }
    )
    return [{**required, **more} for more in extra]


#: Scenario values, by member name, for the members every operation shares.
def scenario(limit_arn: str, tasks: dict[str, str]) -> dict[str, Any]:
    return {
        "deviceArn": FORTE,
        "spendingLimitArn": limit_arn,
        "quantumTaskArn": tasks["queued"],
        "shots": 10,
        "action": ACTION,
        "outputS3Bucket": "amzn-braket-shapes",
        "outputS3KeyPrefix": "tasks",
        "spendingLimit": "100",
        "name": "deviceArn",  # a search filter's
        "operator": "EQUAL",
        "values": [FORTE],
        "tasks": tasks,
    }


ARGUMENTS: dict[str, Callable[[dict[str, Any]], list[dict[str, Any]]]] = {
    "CreateSpendingLimit": lambda c: [
        {
            "deviceArn": AQUILA,
            "timePeriod": {
                "startAt": datetime(2026, 1, 1, tzinfo=UTC),
                "endAt": datetime(2027, 1, 1, tzinfo=UTC),
            },
            "tags": {"team": "research"},
        }
    ],
    "CreateQuantumTask": lambda c: [{"tags": {"team": "research"}}, {"deviceArn": SV1}],
    "GetDevice": lambda c: [{"deviceArn": FORTE}, {"deviceArn": SV1}],
    "GetQuantumTask": lambda c: [{"quantumTaskArn": arn} for arn in c["tasks"].values()],
    "SearchSpendingLimits": lambda c: [{}],  # every limit: with a time period and without
    "SearchDevices": lambda c: [{"filters": []}],
}


# -- the walk --------------------------------------------------------------------------------


def _seed(emu: Emulator, clock: FakeClock, boto: Any) -> tuple[str, dict[str, str]]:
    """A limit without a time period, and a task in each state a response can describe."""
    limit = emu.braket.add_spending_limit(FORTE, "1000", tags={"team": "research"})
    tasks = {}
    for state in ("queued", "completed", "failed", "cancelled", "simulated"):
        device = SV1 if state == "simulated" else FORTE
        tasks[state] = boto.create_quantum_task(
            deviceArn=device,
            shots=10,
            action=ACTION,
            outputS3Bucket="amzn-braket-shapes",
            outputS3KeyPrefix="tasks",
            tags={"state": state},
        )["quantumTaskArn"]
    clock.advance(seconds=4)
    emu.braket.complete_task(tasks["completed"])
    emu.braket.complete_task(tasks["simulated"], duration=timedelta(seconds=4))
    emu.braket.fail_task(tasks["failed"], "the test failed it")
    emu.braket.cancel_task(tasks["cancelled"])
    return limit, tasks


def walk(emu: Emulator, clock: FakeClock, boto: Any) -> dict[str, list[str]]:
    bodies: list[Any] = []

    def keep(response_dict: dict[str, Any], **_: Any) -> None:
        bodies.append(response_dict)

    boto.meta.events.register("before-parse.braket", keep)
    limit, tasks = _seed(emu, clock, boto)
    ctx = scenario(limit, tasks)
    found: dict[str, list[str]] = {}
    for name in served_operations():
        if name not in MODEL.operation_names:
            found[name] = ["the emulator serves it, botocore's braket model has no such operation"]
            continue
        op = MODEL.operation_model(name)
        for kwargs in arguments(op, ctx):
            bodies.clear()
            try:
                getattr(boto, xform_name(name))(**kwargs)
            except ClientError as exc:
                found.setdefault(name, []).append(
                    f"call {kwargs} failed: {exc}; give it working arguments in ARGUMENTS"
                )
                continue
            raw = bodies[-1]["body"]
            body = json.loads(raw) if raw else None
            problems = body_mismatches(op.output_shape, body)
            if problems:
                found.setdefault(name, []).extend(problems)
            if name == "CreateSpendingLimit":
                ctx["spendingLimitArn"] = body["spendingLimitArn"]  # update and delete it
    return found


async def test_every_operation_the_emulator_serves_answers_in_botocores_output_shape(
    emulator: Emulator, clock: FakeClock, boto: Any
) -> None:
    found = await asyncio.to_thread(walk, emulator, clock, boto)
    assert found == {}


def test_the_walk_covers_every_operation_the_emulator_registers() -> None:
    served = served_operations()
    assert {"SearchSpendingLimits", "CreateQuantumTask", "GetQuantumTask", "GetDevice"} <= set(
        served
    )
    assert not any(op.endswith("seed") for op in served)


def test_the_shape_check_finds_what_the_parser_does_not() -> None:
    # The checker itself: each kind of mismatch it exists to find.
    summary = MODEL.operation_model("SearchSpendingLimits").output_shape
    good = {
        "spendingLimitArn": "arn:aws:braket:us-east-1:123456789012:spending-limit/x",
        "deviceArn": FORTE,
        "spendingLimit": "10",
        "queuedSpend": "0",
        "totalSpend": "0",
        "createdAt": "2026-01-01T00:00:00Z",
        "updatedAt": "2026-01-01T00:00:00Z",
        "timePeriod": {"startAt": 0, "endAt": 1},
    }
    assert body_mismatches(summary, {"spendingLimits": [good]}) == []
    bad = {**good, "createdAt": 5, "extra": 1, "timePeriod": {"startAt": "x", "endAt": 1}}
    del bad["totalSpend"]
    assert body_mismatches(summary, {"spendingLimits": [bad]}) == [
        "$.spendingLimits[0].createdAt: expected an ISO 8601 time with a zone, got 5",
        "$.spendingLimits[0].timePeriod.startAt: expected epoch seconds (unixTimestamp), got 'x'",
        "$.spendingLimits[0].extra: not a member of SpendingLimitSummary",
        "$.spendingLimits[0].totalSpend: required, missing",
    ]
    task = MODEL.operation_model("GetQuantumTask").output_shape
    assert "$.status: 'DONE' is not one of" in body_mismatches(task, {"status": "DONE"})[0]


async def test_a_limit_created_without_a_time_period_reads_as_no_window(
    emulator: Emulator, braket: BraketClient
) -> None:
    # The emulator answers the required timePeriod with one that never closes; the guard's
    # model reads it as no window, and a real window stays one.
    emulator.braket.add_spending_limit(FORTE, "10")
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    emulator.braket.add_spending_limit(AQUILA, "10", time_period=(start, end))
    open_limit = await braket.spending_limit_for(FORTE)
    windowed = await braket.spending_limit_for(AQUILA)
    assert open_limit is not None and open_limit.time_period is None
    assert windowed is not None and windowed.time_period == TimePeriod(start, end)
