"""SDK integrations: guard qiskit-ibm-runtime and the Amazon Braket SDK (optional extras).

The SDK modules (:mod:`quotaguard.integrations.braket_sdk`,
:mod:`quotaguard.integrations.qiskit_runtime`) import their SDK only when used. Both reach the
guard's event loop from SDK threads through :class:`GuardBridge`.
"""

from quotaguard.integrations._bridge import (
    BridgeTimeout,
    GuardBridge,
    IntegrationError,
    WrongThread,
)

__all__ = ["BridgeTimeout", "GuardBridge", "IntegrationError", "WrongThread"]
