"""One walk through every ledger operation, for comparing a backend with MemoryLedger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from quotaguard.engine import (
    Budget,
    CalendarMonth,
    Charge,
    FixedWindow,
    NoWindow,
    RollingDays,
    Unit,
)
from tests._support.ledger import usd

__all__ = ["scenario"]

T0 = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)


async def scenario(ledger: Any) -> list[Any]:
    """One walk through every operation; reservation ids are replaced by their order."""
    ids: dict[str, str] = {}
    out: list[Any] = []

    def norm(r: Any) -> Any:
        if r is None:
            return None
        ids.setdefault(r.id, f"r{len(ids)}")
        return (ids[r.id], r.state, r.charges, r.actual, r.created_at, r.lease_expires_at,
                r.ended_at, r.idempotency_key, r.external_id)  # fmt: skip

    def dec(d: Any) -> Any:
        return (d.admitted, d.violations, norm(d.reservation), d.charges, d.replayed)

    fixed = FixedWindow(T0 - timedelta(days=1), T0 + timedelta(days=1))
    await ledger.put_budget(Budget("team:a", Unit.USD, Decimal("10"), CalendarMonth()))
    await ledger.put_budget(Budget("team:b", Unit.USD, Decimal("4.5"), RollingDays(7)))
    await ledger.put_budget(Budget("fix", Unit.USD, Decimal("3"), fixed))
    await ledger.put_budget(Budget("sec", Unit.SECONDS, Decimal("100")))
    out.append(sorted(await ledger.budgets(), key=lambda b: b.key))
    out.append(await ledger.get_budget("team:b"))
    d1 = await ledger.reserve(
        [usd("team:a", "2"), usd("team:b", "1.25")], now=T0, idempotency_key="k1"
    )
    out.append(dec(d1))
    out.append(dec(await ledger.reserve([usd("team:b", "1.25"), usd("team:a", "2")], now=T0,
                                        idempotency_key="k1")))  # fmt: skip
    out.append(dec(await ledger.reserve([usd("team:b", "4")], now=T0)))  # over: rejected
    d2 = await ledger.reserve([usd("team:b", "3.25")], now=T0, lease=timedelta(minutes=1))
    out.append(dec(d2))
    out.append(dec(await ledger.reserve([usd("fix", "1")], now=T0 + timedelta(days=2))))
    out.append(norm(await ledger.bind(d1.reservation.id, "job-1")))
    out.append(norm(await ledger.find_external("job-1")))
    out.append(await ledger.find_external("job-x"))
    out.append(sorted(ids[r.id] for r in await ledger.outstanding()))
    t1 = T0 + timedelta(seconds=30)
    out.append(norm(await ledger.renew(d2.reservation.id, lease=timedelta(minutes=2), now=t1)))
    out.append(await ledger.expire(now=T0 + timedelta(minutes=2)))
    out.append(await ledger.expire(now=T0 + timedelta(minutes=3)))
    out.append(norm(await ledger.get(d2.reservation.id)))
    t2 = T0 + timedelta(minutes=4)
    out.append(norm(await ledger.commit(d1.reservation.id, [usd("team:a", "2.5")], now=t2)))
    out.append(norm(await ledger.commit(d1.reservation.id, now=t2)))  # first outcome stands
    out.append(norm(await ledger.commit(d2.reservation.id, now=t2)))  # after expiry: recorded
    out.append(norm(await ledger.release(d2.reservation.id, now=t2)))
    await ledger.record_report("team:a", Decimal("5"), at=T0 + timedelta(minutes=3))
    await ledger.record_report("team:a", Decimal("1"), at=T0)  # older: ignored
    d3 = await ledger.reserve([usd("team:a", "1"), Charge("sec", Decimal(5), Unit.SECONDS)], now=t2)
    out.append(dec(d3))
    out.append(dec(await ledger.reserve([usd("team:a", "2")], now=t2)))  # report counts
    out.append(norm(await ledger.release(d3.reservation.id, now=t2)))
    for key in ("team:a", "team:b", "fix", "sec"):
        out.append(await ledger.state(key, now=t2))
    out.append(await ledger.state("team:b", now=t2 + timedelta(days=8)))  # rolled out
    out.append(await ledger.state("team:a", now=datetime(2026, 4, 1, tzinfo=UTC)))  # new month
    await ledger.remove_budget("fix")
    out.append(sorted(await ledger.budgets(), key=lambda b: b.key))
    await ledger.put_budget(Budget("team:b", Unit.USD, Decimal("20"), NoWindow()))
    out.append(await ledger.state("team:b", now=t2))
    return out
