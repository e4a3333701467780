"""The emulated IBM Qiskit Runtime service and its IAM token exchange."""

from quotaguard.testing.ibm.service import (
    IBMInstanceState,
    IBMJobState,
    IBMService,
    IBMSessionState,
)

__all__ = ["IBMInstanceState", "IBMJobState", "IBMService", "IBMSessionState"]
