"""The provider limits: ``quotaguard limits`` (Braket spending limits, per device) and
``quotaguard ibm-limit`` (the IBM Qiskit Runtime instance limit), and the rows both they and
``status`` print."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import click

from quotaguard.braket import TimePeriod
from quotaguard.cli.context import braket_client, ibm_client, ibm_policy, run_async, settings_of
from quotaguard.cli.output import fail, out, print_json, print_limits, print_usage
from quotaguard.errors import NotFound
from quotaguard.guard.ibm_instance import InstanceReader

__all__ = ["ibm_limit", "limit_rows", "limits"]


# -- Braket -------------------------------------------------------------------------------------


@click.group()
def limits() -> None:
    """Amazon Braket spending limits (per device)."""


@limits.command("list")
@click.option("--device", "devices", multiple=True, help="Only these device ARNs.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def limits_list(ctx: click.Context, devices: tuple[str, ...], as_json: bool) -> None:
    """List spending limits: limit, total, queued, remaining, window."""

    async def body() -> list[Any]:
        async with braket_client(settings_of(ctx), required=True) as braket:
            return [lim async for lim in braket.search_spending_limits(list(devices) or None)]

    rows = limit_rows(run_async(body)())
    if as_json:
        print_json({"spending_limits": rows})
        return
    print_limits(rows)


def limit_rows(limits: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "arn": lim.spending_limit_arn,
            "device": lim.device_arn,
            "limit": lim.spending_limit,
            "total": lim.total_spend,
            "queued": lim.queued_spend,
            "remaining": lim.remaining,
            "start": lim.time_period.start_at if lim.time_period else None,
            "end": lim.time_period.end_at if lim.time_period else None,
        }
        for lim in limits
    ]


def _when(value: str | None, flag: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time", param_hint=flag) from None
    if parsed.tzinfo is None:
        raise click.BadParameter("give a timezone, e.g. 2026-12-01T00:00:00+00:00", param_hint=flag)
    return parsed


# ignore_unknown_options: "-5" reaches the amount check instead of "No such option '-5'".
@limits.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("device")
@click.argument("amount")
@click.option("--start", help="Window start (ISO 8601 with timezone).")
@click.option("--end", help="Window end (ISO 8601 with timezone).")
@click.pass_context
def limits_set(
    ctx: click.Context, device: str, amount: str, start: str | None, end: str | None
) -> None:
    """Create or update DEVICE's spending limit to AMOUNT USD."""
    begin, finish = _when(start, "--start"), _when(end, "--end")
    if (begin is None) != (finish is None):
        raise click.UsageError("give both --start and --end, or neither")

    async def body() -> str:
        period = TimePeriod(begin, finish) if begin and finish else None
        async with braket_client(settings_of(ctx), required=True) as braket:
            await _known_device(braket, device)
            current = await braket.spending_limit_for(device)
            if current is None:
                await braket.create_spending_limit(device, amount, time_period=period)
                return "created"
            await braket.update_spending_limit(
                current.spending_limit_arn, amount=amount, time_period=period, current=current
            )
            return "updated"

    verb = run_async(body)()
    out.print(f"{verb} spending limit for {device}: ${Decimal(amount)}")


async def _known_device(braket: Any, device: str) -> None:
    """A limit on a device Braket does not have would never apply: check the ARN first
    (an unreachable Braket fails the command too, with its reason; nothing is created)."""
    try:
        await braket.get_device(device)
    except NotFound:
        fail(f"unknown device {device}: Braket in {braket.region} has no such device")


@limits.command("delete")
@click.argument("device")
@click.pass_context
def limits_delete(ctx: click.Context, device: str) -> None:
    """Delete DEVICE's spending limit."""

    async def body() -> bool:
        async with braket_client(settings_of(ctx), required=True) as braket:
            current = await braket.spending_limit_for(device)
            if current is None:
                return False
            await braket.delete_spending_limit(current.spending_limit_arn)
            return True

    if not run_async(body)():
        fail(f"no spending limit for {device}")
    out.print(f"deleted spending limit for {device}")


# -- IBM ----------------------------------------------------------------------------------------


@click.group("ibm-limit")
def ibm_limit() -> None:
    """The IBM Qiskit Runtime instance limit (seconds)."""


@ibm_limit.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def ibm_limit_show(ctx: click.Context, as_json: bool) -> None:
    """Instance usage: consumed, limit, period, plan."""

    async def body() -> Any:
        settings = settings_of(ctx)
        async with ibm_client(settings, required=True) as ibm:
            # The same reading the guard charges against (quotaguard.guard.ibm_instance).
            return (await InstanceReader(ibm, ibm_policy(settings)).read()).row()

    row = run_async(body)()
    if as_json:
        print_json(row)
        return
    print_usage(row)


# ignore_unknown_options: "-10" reaches the range check instead of "No such option '-1'".
@ibm_limit.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("seconds", type=click.IntRange(1, 2**31 - 1))
@click.pass_context
def ibm_limit_set(ctx: click.Context, seconds: int) -> None:
    """Set the instance limit to SECONDS."""

    async def body() -> None:
        async with ibm_client(settings_of(ctx), required=True) as ibm:
            await ibm.update_instance_configuration(seconds)

    run_async(body)()
    out.print(f"instance limit set to {seconds} s")


@ibm_limit.command("clear")
@click.pass_context
def ibm_limit_clear(ctx: click.Context) -> None:
    """Remove the instance limit."""

    async def body() -> None:
        async with ibm_client(settings_of(ctx), required=True) as ibm:
            await ibm.update_instance_configuration(None)

    run_async(body)()
    out.print("instance limit cleared")
