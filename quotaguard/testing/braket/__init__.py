"""The emulated Amazon Braket service: spending limits, quantum tasks, SigV4 checks."""

from quotaguard.testing.braket.service import (
    OVER_LIMIT_MESSAGE,
    BraketService,
    EmuDevice,
    EmuLimit,
    EmuTask,
    capabilities,
)

__all__ = [
    "OVER_LIMIT_MESSAGE",
    "BraketService",
    "EmuDevice",
    "EmuLimit",
    "EmuTask",
    "capabilities",
]
