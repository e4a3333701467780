"""One IBM instance's state as the guard charges against it: usage, the binding limit, the plan.

The one place that reads them (``IBMAdapter`` for every instance it charges, ``quotaguard
status`` and ``ibm-limit show``), so the guard and the command tell the same story. What is
asked, in order, and only as far as needed:

1. ``GET /v1/instances/usage`` (always);
2. ``GET /v1/instance`` when the usage reply has neither a limit nor an allocation;
3. ``GET /v1/accounts/{account}?plan_id=…`` (once a read): the plan's configuration, which
   gives the plan's session ``max_ttl`` and, when the plan id does not name the plan, the
   plan; then the plan's Global Catalog entry when neither tells it, once per plan id (a plan
   id names one plan for good).

The decision itself is :func:`quotaguard.ibm.plans.resolve_limit`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import attrs

from quotaguard.errors import BadRequest, InvalidInput, NotFound, PermissionDenied, ProviderError
from quotaguard.ibm.plans import (
    InstanceLimit,
    Plan,
    plan_from_account,
    plan_from_catalog,
    plan_from_name,
    resolve_limit,
)
from quotaguard.ibm.sansio import account_from_crn

if TYPE_CHECKING:
    from quotaguard.ibm.client import IBMRuntimeClient
    from quotaguard.ibm.models import GetUsageResponse, PlanConfiguration
    from quotaguard.ibm.rules import IBMPolicy

__all__ = ["InstanceReader", "InstanceReading"]

log = logging.getLogger("quotaguard.guard")

#: Answers of the account route that mean "it does not tell", not "IBM is down".
_NO_ANSWER = (NotFound, PermissionDenied, BadRequest)


@attrs.frozen
class InstanceReading:
    crn: str
    usage: GetUsageResponse
    limit: InstanceLimit
    #: The account's configuration of the instance's plan (``GET /v1/accounts/{id}``), if any.
    plan_config: PlanConfiguration | None = None

    @property
    def plan_max_ttl(self) -> int | None:
        """The plan's session maximum; ``None``: not configured, the policy's applies."""
        return self.plan_config.max_ttl or None if self.plan_config is not None else None

    def row(self) -> dict[str, Any]:
        """What ``quotaguard status`` / ``ibm-limit show`` print for the instance."""
        period = self.usage.usage_period
        return {
            "service_crn": self.crn,
            "plan_id": self.usage.plan_id,
            "plan": self.limit.plan,
            "plan_source": self.limit.plan_source,
            "consumed_seconds": self.usage.usage_consumed_seconds,
            "limit_seconds": self.limit.seconds,
            "limit_source": self.limit.source,
            "limit_reached": self.usage.usage_limit_reached,
            "period_start": period.start_time if period else None,
            "period_end": period.end_time if period else None,
        }


class InstanceReader:
    """Reads instances through one client; remembers the plan of each plan id it told, and the
    last plan configuration the account route gave (kept through an outage of that route)."""

    def __init__(self, client: IBMRuntimeClient, policy: IBMPolicy) -> None:
        self.client = client
        self.policy = policy
        self._plans: dict[str, tuple[Plan | None, str | None]] = {}
        self._configs: dict[tuple[str, str], PlanConfiguration | None] = {}

    def __repr__(self) -> str:
        return f"InstanceReader({self.client.service_crn!r})"

    async def read(self, crn: str | None = None) -> InstanceReading:
        """``crn``: another instance than the client's (read with the client's API key)."""
        target = crn or self.client.service_crn
        # Only another instance's calls carry ``instance=``: the client's own stay as they were.
        where: dict[str, Any] = {} if target == self.client.service_crn else {"instance": target}
        usage = await self.client.get_usage(**where)
        instance = None
        if usage.usage_limit_seconds is None and usage.usage_allocation_seconds is None:
            # Some instances report their limit only on /v1/instance: one more GET per refresh,
            # only for them, rather than treat a limited instance as unlimited.
            instance = await self.client.get_instance(**where)
        seconds = self.policy.open_plan_seconds
        plan_id = usage.plan_id
        # The plan is always told (sessions depend on it); IBM's figures alone decide whether
        # the limit hangs on it, and so whether an unavailable account route may fail the read.
        needed = not resolve_limit(usage, instance, None, None, open_plan_seconds=seconds).known
        told = plan_from_name(plan_id) is not None or plan_id in self._plans
        config, final = await self._configuration(plan_id, target, where, needed and not told)
        plan, source = await self._plan(plan_id, config, final)
        limit = resolve_limit(usage, instance, plan, source, open_plan_seconds=seconds)
        return InstanceReading(target, usage, limit, config)

    async def _configuration(
        self, plan_id: str, crn: str, where: dict[str, Any], needed: bool
    ) -> tuple[PlanConfiguration | None, bool]:
        """(the account's configuration of ``plan_id`` or ``None``, whether it is this read's:
        not when IBM was unavailable while the limit did not hang on it; the last one read
        stands in)."""
        account = account_from_crn(crn)
        if account is None:
            return None, True
        try:
            reply = await self.client.get_account(account, plan_id, **where)
        except (InvalidInput, *_NO_ANSWER):  # an id the route refuses, or no such plan
            config = None
        except (ProviderError, TimeoutError):
            if needed:
                raise  # the limit hangs on it: the fail mode decides, as for the usage read
            log.debug("%s: account route unavailable; its last plan configuration stands", crn)
            return self._configs.get((account, plan_id)), False
        else:
            config = reply.plan(plan_id)
        self._configs[account, plan_id] = config
        return config, True

    async def _plan(
        self, plan_id: str, config: PlanConfiguration | None, final: bool
    ) -> tuple[Plan | None, str | None]:
        if (named := plan_from_name(plan_id)) is not None:
            return named, "plan_id"
        if plan_id not in self._plans:
            told = plan_from_account(config)
            source: str | None = "account"
            if told is None and final:
                told, final, source = *await self._from_catalog(plan_id), "catalog"
            if final:  # not when IBM was unavailable: asked again next read
                self._plans[plan_id] = (told, source)
            elif told is not None:  # the last configuration told it
                return told, source
        told, source = self._plans.get(plan_id, (None, None))
        if told is not None:
            return told, source
        if self.policy.plan is not None:
            return self.policy.plan, "policy"
        return None, None

    async def _from_catalog(self, plan_id: str) -> tuple[Plan | None, bool]:
        """The plan the Global Catalog names, where the client has one. Never fails the read:
        the catalog is a help where available, and an unknown plan fails closed anyway."""
        try:
            entry = await self.client.get_catalog_entry(plan_id)
        except (InvalidInput, *_NO_ANSWER):
            return None, True
        except (ProviderError, TimeoutError):
            log.debug("%s: Global Catalog unavailable; plan not told this time", plan_id)
            return None, False
        return (None if entry is None else plan_from_catalog(entry)), True
