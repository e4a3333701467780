"""The world of the reliability tests: an IBM instance and a Braket QPU behind real clients.

Credentials come from :mod:`tests._support.secrets`, so the session-wide secrets scan knows them.
"""

from __future__ import annotations

import attrs

from quotaguard.braket import BraketClient
from quotaguard.ibm import IBMRuntimeClient
from quotaguard.testing import Emulator, FakeClock
from tests._support.sleeps import Sleeps

__all__ = ["ATTEMPTS", "BACKEND", "CRN", "TIMEOUT", "World"]

CRN = "crn:v1:bluemix:public:quantum-computing:us-east:a/rel-acct:rel-inst::"
BACKEND = "ibm_reliable"
#: Client timeout of the fault tests: an emulator delay longer than this is a timeout. 1 s,
#: not less: at 0.25 s a plain request timed out once under CI's load (two suites at once).
TIMEOUT = 1.0
ATTEMPTS = 3


@attrs.define
class World:
    """What the ``world`` fixture opened: the emulator, its clients, clock and IBM sleeps."""

    emu: Emulator
    ibm: IBMRuntimeClient
    braket: BraketClient
    clock: FakeClock
    sleeps: Sleeps
    #: A submission a test made earlier, for cases that refer to it.
    held: object = None
