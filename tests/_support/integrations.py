"""The IBM instances of tests/integrations, a QiskitRuntimeService at the emulator, a circuit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quotaguard.testing import Emulator

if TYPE_CHECKING:
    from qiskit import QuantumCircuit
    from qiskit_ibm_runtime import QiskitRuntimeService

__all__ = ["BACKEND", "CRN", "KEY", "OTHER", "S3", "bell", "make_service"]

KEY = "qg-sdk-test-apikey-5b7e"
CRN = "crn:v1:bluemix:public:quantum-computing:us-east:a/acct-sdk:inst-1::"
OTHER = "crn:v1:bluemix:public:quantum-computing:us-east:a/acct-sdk:inst-2::"
BACKEND = "ibm_emulated"
#: The Braket SDK's result folder (bucket, prefix); passing it skips the SDK's STS and S3 calls.
S3 = ("amzn-braket-test-bucket", "tasks")


def make_service(emu: Emulator) -> QiskitRuntimeService:
    """A QiskitRuntimeService for :data:`KEY` and :data:`CRN` at the emulator."""
    # Imported here: the Braket tests need not pay for importing qiskit.
    from qiskit_ibm_runtime import QiskitRuntimeService

    # A URL containing "experimental" is used as is (any other is rewritten and loses its port).
    return QiskitRuntimeService(
        channel="ibm_quantum_platform",
        token=KEY,
        instance=CRN,
        url=f"{emu.url}/experimental/api/v1",
    )


def bell(backend: Any) -> QuantumCircuit:
    """A Bell circuit transpiled for ``backend`` (ISA, as the primitives require)."""
    from qiskit import QuantumCircuit, transpile

    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return transpile(qc, backend, optimization_level=1)
