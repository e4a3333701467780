"""IBM Qiskit Runtime: the async instance-API client, payload models, work types and rules.

``IBMRuntimeClient`` is loaded on first use (PEP 562), so importing the work types, rules or
models loads no aiohttp.
"""

from typing import TYPE_CHECKING

from quotaguard.ibm.auth import Secret
from quotaguard.ibm.models import (
    ExpandedAccountConfiguration,
    ExpandedPlanConfiguration,
    FunctionConfig,
    GetUsageResponse,
    Instance,
    InstanceConfiguration,
    Job,
    JobMetrics,
    JobStatus,
    JobUsage,
    PlanConfiguration,
    Session,
    UsagePeriod,
)
from quotaguard.ibm.rules import (
    IBMPolicy,
    budget_key,
    estimate,
    explain_rejection,
    instance_budget,
    reported_used,
)
from quotaguard.ibm.sansio import DEFAULT_API_VERSION
from quotaguard.ibm.work import IBMJob, IBMSession

if TYPE_CHECKING:
    from quotaguard.ibm.client import IBMRuntimeClient

__all__ = [
    "DEFAULT_API_VERSION",
    "ExpandedAccountConfiguration",
    "ExpandedPlanConfiguration",
    "FunctionConfig",
    "GetUsageResponse",
    "IBMJob",
    "IBMPolicy",
    "IBMRuntimeClient",
    "IBMSession",
    "Instance",
    "InstanceConfiguration",
    "Job",
    "JobMetrics",
    "JobStatus",
    "JobUsage",
    "PlanConfiguration",
    "Secret",
    "Session",
    "UsagePeriod",
    "budget_key",
    "estimate",
    "explain_rejection",
    "instance_budget",
    "reported_used",
]


def __getattr__(name: str) -> object:
    if name == "IBMRuntimeClient":
        from quotaguard.ibm.client import IBMRuntimeClient

        globals()[name] = IBMRuntimeClient  # later lookups skip this hook
        return IBMRuntimeClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
