"""The pieces of the in-doubt lookups alone: the requests the clients build for them, the
answers they read, and a lookup that fails (the hold stays in doubt, nothing raises)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from quotaguard._wire import Response
from quotaguard.braket import BraketClient, sansio
from quotaguard.engine.amounts import Unit
from quotaguard.engine.model import Charge, Reservation
from quotaguard.errors import InvalidInput, MalformedPayload, ProviderUnavailable
from quotaguard.guard import BudgetGuard
from quotaguard.guard.stamps import client_token, first_found, may_have_sent
from quotaguard.ibm import sansio as ibm_sansio
from quotaguard.ledger.memory import MemoryLedger
from quotaguard.testing import Emulator, FakeClock
from tests._support.aws import botocore_session
from tests._support.braket import ACTION, FORTE, KEY, SV1

WHEN = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def answer(body: object, status: int = 200) -> Response:
    return Response(status, {}, json.dumps(body).encode(), "https://x")


def test_ibm_list_jobs_asks_for_every_tag_without_params() -> None:
    request = ibm_sansio.build_list_jobs(["quotaguard:rsv_1", "a b"])
    assert request.method == "GET"
    assert request.path == "/v1/jobs?tags=quotaguard%3Arsv_1&tags=a+b&limit=20&exclude_params=true"
    with pytest.raises(InvalidInput) as info:
        ibm_sansio.build_list_jobs("quotaguard:rsv_1")
    assert info.value.field == "tags"


def test_ibm_listed_jobs_are_checked_for_the_tag_rather_than_trusted() -> None:
    request = ibm_sansio.build_list_jobs(["t"])
    body = {"jobs": [{"id": "j1", "tags": ["t"]}, {"id": "j2", "tags": ["u"]}, {"id": "j3"}]}
    assert ibm_sansio.decipher_job_ids(request, answer(body), "t") == ["j1"]
    with pytest.raises(MalformedPayload) as info:
        ibm_sansio.decipher_job_ids(request, answer({"jobs": [{"tags": ["t"]}]}), "t")
    assert info.value.field == "$.jobs[0].id"


def test_braket_search_filters_on_devices_and_creation_time() -> None:
    request = sansio.build_search_quantum_tasks([FORTE], WHEN, "next")
    assert request.params == {
        "filters": [
            {"name": "deviceArn", "operator": "EQUAL", "values": [FORTE]},
            {"name": "createdAt", "operator": "GTE", "values": ["2026-12-01T12:00:00Z"]},
        ],
        "maxResults": 100,
        "nextToken": "next",
    }
    with pytest.raises(InvalidInput, match="timezone"):
        sansio.build_search_quantum_tasks(None, datetime(2026, 12, 1))
    with pytest.raises(InvalidInput, match="at most 10"):
        sansio.build_search_quantum_tasks([FORTE] * 11, None)


def test_braket_search_page_is_read_for_the_tag() -> None:
    request = sansio.build_search_quantum_tasks(None, WHEN)
    arn = "arn:aws:braket:us-east-1:123456789012:quantum-task/1"
    body = {
        "quantumTasks": [
            {"quantumTaskArn": arn, "tags": {"k": "v"}},
            {"quantumTaskArn": arn + "2", "tags": {"k": "other"}},
        ],
        "nextToken": "n",
    }
    assert sansio.decipher_tagged_tasks(request, answer(body), "k", "v") == ([arn], "n")
    with pytest.raises(MalformedPayload) as info:
        sansio.decipher_tagged_tasks(request, answer({"quantumTasks": [{}]}), "k", "v")
    assert info.value.field == "$.quantumTasks[0].quantumTaskArn"


def test_associations_are_checked_and_sent_as_the_model_names_them() -> None:
    arn = "arn:aws:braket:us-east-1:123456789012:reservation/r-1"
    request = sansio.build_create_quantum_task(
        FORTE,
        ACTION,
        10,
        "bucket",
        "p",
        associations=[{"arn": arn, "type": sansio.RESERVATION_ASSOCIATION}],
    )
    assert request.params["associations"] == [{"arn": arn, "type": "RESERVATION_TIME_WINDOW_ARN"}]
    for bad, field in (
        ({"arn": arn}, "associations"),
        ([{"arn": "r-1", "type": "RESERVATION_TIME_WINDOW_ARN"}], "associations[0].arn"),
    ):
        with pytest.raises(InvalidInput) as info:
            sansio.build_create_quantum_task(FORTE, ACTION, 10, "bucket", "p", associations=bad)
        assert info.value.field == field


def test_client_tokens_are_stable_distinct_and_fit_braket() -> None:
    assert client_token("rsv_1") == client_token("rsv_1") != client_token("rsv_2")
    assert 1 <= len(client_token("rsv_" + "f" * 200)) <= 64


def test_only_holds_a_provider_may_have_sent_are_looked_up() -> None:
    def hold(*keys: str) -> Reservation:
        charges = tuple(Charge(k, Decimal(1), Unit.USD) for k in keys)
        return Reservation(id="r", charges=charges, created_at=WHEN, lease_expires_at=WHEN)

    def braket(key: str) -> bool:
        return key.startswith("braket:")

    assert may_have_sent(hold(KEY, "team:a"), braket)
    assert not may_have_sent(hold("ibm:crn"), braket)
    assert may_have_sent(hold("team:a"), braket)  # your budgets only: any provider's


@pytest.fixture
async def guard(emulator: Emulator, clock: FakeClock) -> AsyncIterator[BudgetGuard]:
    emulator.braket.add_spending_limit(FORTE, "100")
    braket = BraketClient(
        "us-east-1", endpoint_url=emulator.url, botocore_session=botocore_session()
    )
    async with braket, BudgetGuard(MemoryLedger(), braket=braket, clock=clock) as g:
        yield g


async def test_a_failed_lookup_leaves_the_hold_in_doubt_and_the_pass_running(
    emulator: Emulator, guard: BudgetGuard, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.faults.add("braket.CreateQuantumTask", status=503, after=True, times=50)
    with pytest.raises(ProviderUnavailable):
        await guard.braket.create_quantum_task(FORTE, ACTION, 10, "amazon-braket-test", "p")
    emulator.faults.clear()
    emulator.faults.add("braket.SearchQuantumTasks", status=500, times=50)
    with caplog.at_level(logging.WARNING, logger="quotaguard.guard"):
        assert await guard.watch_once() == 0
    [doubt] = await guard.in_doubt()
    assert doubt.external_id is None
    assert f"looking up the work of in-doubt {doubt.id} failed" in caplog.text
    emulator.faults.clear()  # the next pass finds it
    await guard.watch_once()
    assert (await guard.ledger.get(doubt.id)).external_id in emulator.braket.tasks


async def test_a_simulator_task_without_a_hold_is_sent_unstamped(
    emulator: Emulator, guard: BudgetGuard
) -> None:
    sub = await guard.braket.create_quantum_task(SV1, ACTION, 0, "amazon-braket-test", "p")
    assert sub.id == ""  # nothing metered, nothing held: nothing to find later
    assert emulator.braket.tasks[sub.external_id or ""].tags == {}


async def test_two_jobs_under_one_tag_bind_neither(caplog: pytest.LogCaptureFixture) -> None:
    """Binding the first would settle the hold at one job's cost and count the other nowhere:
    the hold stays in doubt (count twice, never zero)."""
    hold = Reservation("rsv_1", (Charge("ibm:x", Decimal(300), Unit.SECONDS),), WHEN, WHEN)

    async def lookup(ids: list[str]) -> list[str]:
        return ids

    with caplog.at_level(logging.WARNING, logger="quotaguard.guard"):
        assert await first_found(lookup(["j1", "j2"]), hold) is None
    assert "2 jobs carry the tag of in-doubt rsv_1 (j1, j2); binding none" in caplog.text
    assert await first_found(lookup(["j1"]), hold) == "j1"
    assert await first_found(lookup([]), hold) is None
