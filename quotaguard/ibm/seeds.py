"""The IBM documents (``../shared/seeds/``) that the IBM rules cite in their registry entries."""

from __future__ import annotations

__all__ = ["INSTANCES_API", "MAX_EXECUTION_TIME"]

#: The Qiskit Runtime instance API reference.
INSTANCES_API = "seeds/ibm-runtime-instances-api.txt"
#: The max_execution_time guide and its FAQ.
MAX_EXECUTION_TIME = "seeds/ibm-max-execution-time-faq.txt, ibm-max-execution-time.txt"
