"""A local emulator of the IBM Qiskit Runtime instance API and the Amazon Braket API.

For demos, for quotaguard's own tests and for yours::

    async with Emulator(clock=FakeClock()) as emu:
        emu.braket.add_device(...)
        ...

``await serve(port=8765)`` (or ``python -m quotaguard.testing --port 8765``) runs it as a
process until interrupted. This package stands alone: it imports aiohttp.web, attrs and the
standard library, and nothing else of quotaguard, so it checks the library from outside.
"""

from quotaguard.testing.clock import FakeClock
from quotaguard.testing.emulator import Emulator, RequestRecord
from quotaguard.testing.faults import Fault, Faults
from quotaguard.testing.serve import serve

__all__ = ["Emulator", "FakeClock", "Fault", "Faults", "RequestRecord", "serve"]
