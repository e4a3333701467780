"""Braket budget rules, pure: a task + prices + the device's spending limit -> an Estimate.

Spending limits apply to QPU tasks only and only inside ``[startAt, endAt)``; outside it
Braket rejects the task, so we do too. remaining = spendingLimit − totalSpend − queuedSpend;
the guard feeds ``total_spend + queued_spend`` to the ledger as the provider report so local
reservations are counted on top of it.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from decimal import Decimal

from quotaguard.braket.checks import check_amount, check_shots, parse_device_arn
from quotaguard.braket.models import Device, SpendingLimit, TimePeriod
from quotaguard.braket.pricing import Price, PriceTable, unknown_price_reason
from quotaguard.braket.work import BraketTask
from quotaguard.engine import Budget, Charge, Estimate, FixedWindow, NoWindow, Unit, Violation
from quotaguard.engine.amounts import MAX_AMOUNT, money_context
from quotaguard.engine.registry import Source, register
from quotaguard.engine.windows import check_aware
from quotaguard.errors import InvalidInput

__all__ = [
    "RULE_DEVICE_UNAVAILABLE",
    "RULE_MAX_DURATION_UNSET",
    "RULE_PRICE_UNKNOWN",
    "RULE_SERVER",
    "RULE_SHOTS_INVALID",
    "RULE_WINDOW",
    "allowed_run",
    "budget_key",
    "check_create",
    "check_time_period",
    "check_update",
    "device_facts",
    "estimate",
    "limit_budget",
    "reported_used",
]

_SEED = "seeds/braket-spending-limits-api.txt"

RULE_PRICE_UNKNOWN = register(
    "braket.price.unknown",
    "No price is known for the device, so the task's cost cannot be estimated.",
    source=Source.LIVE,
    reference="AWS Price List for Braket (BRAKET_PRICE_OFFERS_URL), the shipped PriceTable",
    action="Give a price: PriceTable.with_price(...) or BraketTask(price_override=Price(...)).",
)
RULE_SHOTS_INVALID = register(
    "braket.shots.invalid",
    "Shots outside what the device accepts (checked when estimate() is given the Device).",
    source=Source.SDK,
    reference="GetDevice deviceCapabilities service.shotsRange (amazon-braket-schemas)",
    action="Ask for a number of shots inside the device's range.",
    numbers=">= 1 on a QPU, >= 0 on a simulator, < 2**63, within shotsRange",
)
RULE_WINDOW = register(
    "braket.spending_limit.window",
    "The device's spending limit has a time period and it is now outside [startAt, endAt).",
    source=(Source.SEED, Source.LIVE),
    reference=f"{_SEED}: timePeriod (live: startAt/endAt epoch seconds)",
    action="Submit inside the period, or change the limit (quotaguard limits set).",
)
RULE_SERVER = register(
    "braket.spending_limit.server",
    "Braket itself refused the task: 'Attempted to spend over the spending limit'.",
    source=Source.LIVE,
    reference="CreateQuantumTask HTTP 400 ValidationException (botocore braket model)",
    action="The server's view of spend is ahead of the guard's: refresh, lower the task's "
    "cost or raise the spending limit.",
)
RULE_DEVICE_UNAVAILABLE = register(
    "braket.device.unavailable",
    "The device is retired (the Braket SDK's device list, braket.devices.Devices, names it "
    "with a leading _), or not ONLINE when estimate() is given the Device: Braket refuses it.",
    source=(Source.SDK, Source.LIVE),
    reference="braket/devices/devices.py (retired entries); GetDevice deviceStatus "
    "(ONLINE | OFFLINE | RETIRED)",
    action="Pick a current device (or wait for an offline one to come back online).",
)
RULE_MAX_DURATION_UNSET = register(
    "braket.max_duration.unset",
    "A simulator task (billed per minute) draws on a budget but declares no max_duration: "
    "Braket does not bound a simulator's run, so its cost cannot be held.",
    source=(Source.LIVE, Source.SDK),
    reference="AWS Braket pricing (simulators per minute, 3 s minimum); braket/tracking/"
    "tracker.py _get_simulator_task_cost",
    action="Declare BraketTask(max_duration=timedelta(...)) or pass max_duration= to "
    "AwsDevice.run / run_batch; the watcher cancels the task once it has run that long.",
    numbers="held: max_duration x rate, at least 3 s",
)


def budget_key(device_arn: str) -> str:
    return f"braket:{device_arn}"


@functools.lru_cache(maxsize=1024)
def device_facts(device_arn: str) -> tuple[str, bool]:
    """A device's budget key and whether it is a QPU, parsed once per ARN: every estimate
    needs both and the ARN regex is the slow part. Invalid ARNs raise (and are not cached)."""
    return budget_key(device_arn), parse_device_arn(device_arn).is_qpu


def limit_budget(limit: SpendingLimit) -> Budget:
    """The engine budget for a Braket spending limit (USD, fixed window when it has a period)."""
    window = (
        FixedWindow(limit.time_period.start_at, limit.time_period.end_at)
        if limit.time_period is not None
        else NoWindow()
    )
    return Budget(budget_key(limit.device_arn), Unit.USD, limit.spending_limit, window)


def reported_used(limit: SpendingLimit) -> Decimal:
    """What Braket says is already used: ``totalSpend + queuedSpend`` (for record_report)."""
    return limit.total_spend + limit.queued_spend


def check_time_period(value: object, field: str = "time_period") -> TimePeriod | None:
    if value is None:
        return None
    if not isinstance(value, TimePeriod):
        raise InvalidInput(
            field, f"expected a TimePeriod(start_at, end_at), got {type(value).__name__}"
        )
    return value


def check_create(
    device_arn: object, amount: object, time_period: object = None
) -> tuple[str, Decimal, TimePeriod | None]:
    """Validate a create: a QPU ARN, a Braket amount, an optional time period."""
    ref = parse_device_arn(device_arn)
    if not ref.is_qpu:
        raise InvalidInput(
            "device_arn", f"spending limits apply to QPUs only; {ref.arn} is a simulator"
        )
    return ref.arn, check_amount(amount), check_time_period(time_period)


def check_update(amount: Decimal, current: SpendingLimit | None) -> None:
    """Braket rejects a new limit below ``totalSpend + queuedSpend``; so do we, before sending."""
    if current is None:
        return
    floor = current.total_spend + current.queued_spend
    if amount < floor:
        raise InvalidInput(
            "amount",
            f"new limit {amount} is below what is already spent or queued on "
            f"{current.device_arn} ({floor}); choose at least {floor}",
        )


def allowed_run(price: Price, shots: int, held: Decimal) -> timedelta:
    """The longest run of a per-minute task that ``held`` USD pays for (whole milliseconds,
    rounded down): past it, the task costs more than was held."""
    with money_context():
        left = held - price.per_task - price.per_shot * shots
        ms = int(left * 60_000 / price.per_minute) if price.per_minute else 0
    return timedelta(milliseconds=max(ms, 0))


def _too_costly(task: BraketTask, shots: int, price: Price, amount: Decimal) -> InvalidInput:
    """Work priced beyond what any budget can hold: the caller asked for too much of something
    (shots, run time), and the error names that, not the charge it would have made."""
    if price.per_shot * shots > MAX_AMOUNT / 2 or not price.per_minute:
        field, what = "shots", f"{shots} shots at {price.per_shot} USD a shot"
    else:
        field, what = (
            "max_duration",
            f"a run of {task.max_duration} at {price.per_minute} USD a minute",
        )
    return InvalidInput(
        field,
        f"{what} would cost {amount} USD, more than any budget can hold ({MAX_AMOUNT} USD); "
        "check the number",
    )


def estimate(
    task: BraketTask,
    *,
    prices: PriceTable,
    limit: SpendingLimit | None,
    device: Device | None = None,
    now: datetime,
    region: str | None = None,
) -> Estimate:
    """Charges and static violations for one task. Pure: ``now`` is passed in. ``region`` is
    where the task is sent (a simulator is priced in it)."""
    check_aware(now, "now")
    violations: list[Violation] = []
    key, qpu = device_facts(task.device_arn)
    shots = task.shots if task.shots is not None else task.effective_shots
    if prices.is_retired(task.device_arn):  # Braket would refuse it, whatever it is priced at
        violations.append(
            Violation(
                RULE_DEVICE_UNAVAILABLE,
                prices.retired_reason(task.device_arn),
                key if qpu else None,
            )
        )
    if device is not None:
        if device.device_status != "ONLINE":
            violations.append(
                Violation(
                    RULE_DEVICE_UNAVAILABLE,
                    f"{task.device_arn} is {device.device_status}; Braket would refuse the task",
                    key if qpu else None,
                )
            )
        try:
            check_shots(shots, qpu=qpu, shots_range=device.shots_range)
        except InvalidInput as exc:
            violations.append(Violation(RULE_SHOTS_INVALID, exc.reason, key if qpu else None))
    price = task.price_override or prices.price_for(task.device_arn, region=region)
    if price is None:
        violations.append(
            Violation(
                RULE_PRICE_UNKNOWN,
                unknown_price_reason(task.device_arn, prices.as_of),
                key if qpu else None,
            )
        )
        return Estimate((), tuple(violations), Decimal(0), Unit.USD, qpu)
    if task.reservation_arn is not None:
        # Braket Direct: the reservation is billed on its own; its tasks cost nothing more,
        # and spending limits do not apply to them (seed; the SDK's Tracker counts them 0).
        return Estimate((), tuple(violations), Decimal(0), Unit.USD, qpu)
    amount = price.estimate(shots, task.max_duration)
    if amount > MAX_AMOUNT:
        raise _too_costly(task, shots, price, amount)
    if_charged: tuple[Violation, ...] = ()
    if price.per_minute and task.max_duration is None:
        if_charged = (_undeclared_run(task),)
    charges: tuple[Charge, ...] = ()
    if qpu and limit is not None and limit.device_arn == task.device_arn:
        charges = (Charge(key, amount, Unit.USD),)
        period = limit.time_period
        if period is not None and not period.contains(now):
            violations.append(
                Violation(
                    RULE_WINDOW,
                    f"{now.isoformat()} is outside the spending limit's time window "
                    f"[{period.start_at.isoformat()}, {period.end_at.isoformat()}); Braket "
                    "rejects tasks on this device until the window opens or the limit changes",
                    key,
                    amount,
                    Decimal(0),
                    Unit.USD,
                )
            )
    return Estimate(charges, tuple(violations), amount, Unit.USD, qpu, if_charged=if_charged)


def _undeclared_run(task: BraketTask) -> Violation:
    return Violation(
        RULE_MAX_DURATION_UNSET,
        f"{task.device_arn} bills per minute of run time and Braket does not stop it: declare "
        "how long the task may run, BraketTask(max_duration=timedelta(...)) or max_duration= "
        "to AwsDevice.run / run_batch; the guard holds that run and cancels the task past it",
    )
