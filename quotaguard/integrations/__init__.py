"""SDK integrations: guard qiskit-ibm-runtime and the Amazon Braket SDK (optional extras).

The SDK modules (:mod:`quotaguard.integrations.braket_sdk`,
:mod:`quotaguard.integrations.qiskit_runtime`) import their SDK only when used. Both reach the
guard's event loop from SDK threads through :class:`GuardBridge`. An SDK release newer than the
tested ones is refused unless ``QUOTAGUARD_ALLOW_UNTESTED_SDK=1`` (:data:`ALLOW_UNTESTED`), which
guards it and warns once (:class:`UntestedSDKWarning`).
"""

from quotaguard.integrations._bridge import (
    BridgeTimeout,
    GuardBridge,
    IntegrationError,
    WrongThread,
)
from quotaguard.integrations._versions import ALLOW_UNTESTED, UntestedSDKWarning

__all__ = [
    "ALLOW_UNTESTED",
    "BridgeTimeout",
    "GuardBridge",
    "IntegrationError",
    "UntestedSDKWarning",
    "WrongThread",
]
