"""A local emulator of the IBM Qiskit Runtime instance API and the Amazon Braket API.

For demos, for quotaguard's own tests and for yours::

    async with Emulator() as emu:
        emu.braket.add_device(...)
        ...
"""

from quotaguard.testing._faults import Fault, Faults
from quotaguard.testing.emulator import Emulator, RequestRecord

__all__ = ["Emulator", "Fault", "Faults", "RequestRecord"]
