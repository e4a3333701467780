"""IBM Qiskit Runtime: the async instance-API client, payload models, work types and rules."""

from quotaguard.ibm.auth import Secret
from quotaguard.ibm.client import IBMRuntimeClient
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
