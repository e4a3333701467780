"""A local emulator of the IBM Qiskit Runtime instance API and the Amazon Braket API.

For demos, for quotaguard's own tests and for yours::

    async with Emulator() as emu:
        emu.braket.add_device(...)
        ...
"""

from quotaguard.testing.emulator import Emulator, RequestRecord
from quotaguard.testing.faults import Fault, Faults

__all__ = ["Emulator", "Fault", "Faults", "RequestRecord"]
