"""The Redis ledger's Lua scripts as files: one per operation, shared helpers, shipped as
package data, no calendar and no server clock inside (no server needed here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from quotaguard.engine import CalendarMonth
from quotaguard.ledger.encoding import epoch_us
from quotaguard.ledger.redis import SCRIPTS
from quotaguard.ledger.redis.codec import month_arg
from quotaguard.ledger.redis.scripts import OPERATIONS, sha1
from tests._support.redis_ledger import lua_files

HELPERS = {"base", "holds", "usage"}


def test_one_file_per_operation_plus_the_helpers_and_nothing_else() -> None:
    assert set(lua_files()) == set(OPERATIONS) | HELPERS
    assert set(SCRIPTS) == set(OPERATIONS)
    assert len({sha1(source) for source in SCRIPTS.values()}) == len(OPERATIONS)


def test_each_script_is_its_helpers_then_its_own_file() -> None:
    files = lua_files()
    for op, source in SCRIPTS.items():
        needs = files[op].split("\n", 1)[0].removeprefix("--! needs:").split()
        assert needs[0] == "base" and set(needs) <= HELPERS, op
        assert source == "\n".join([*(files[n] for n in needs), files[op]])
        assert source.rstrip().splitlines()[-1].startswith("return"), op


def test_the_scripts_know_no_calendar_and_read_the_server_clock_in_one_place() -> None:
    for name, source in lua_files().items():
        assert "146097" not in source, name  # days in 400 Gregorian years: a calendar
        # TIME is read by base.lua's ledger_time() alone (time_source "server").
        assert source.count("'TIME'") == (name == "base"), name


def test_every_script_reads_its_arguments_through_the_checked_json_array() -> None:
    for op in OPERATIONS:
        own = lua_files()[op]
        assert "args({" in own, op
        assert "ARGV[" not in own, op  # only base.lua reads ARGV


_times = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 12, 31), timezones=st.just(UTC)
)


@given(now=_times)
def test_month_arg_is_the_calendar_month_around_now(now: datetime) -> None:
    start, end, arg = month_arg(now)
    first, after = CalendarMonth().bounds(now)
    assert first is not None and after is not None
    assert (start, end) == (epoch_us(first), epoch_us(after))
    assert start <= epoch_us(now) < end
    assert arg == [now.year * 12 + now.month - 1, start, end]


def test_month_arg_reads_any_timezone_in_utc() -> None:
    # 23:30 on the 31st in UTC-2 is already the 1st of the next month in UTC.
    local = datetime(2026, 1, 31, 23, 30, tzinfo=timezone(timedelta(hours=-2)))
    assert month_arg(local) == month_arg(datetime(2026, 2, 1, 1, 30, tzinfo=UTC))
