"""Backend documents the emulator serves so qiskit-ibm-runtime can build an ``IBMBackend``.

qiskit-ibm-runtime lists ``/backends`` (objects with a ``name``), then reads
``/backends/{name}/configuration`` (a ``QasmBackendConfiguration``), ``/properties`` (may be
empty) and ``/status``. These are small valid documents: a 5-qubit line with IBM's Eagle basis,
enough for a Target, the primitives' ISA checks and a job submission.
"""

from __future__ import annotations

from typing import Any

__all__ = ["N_QUBITS", "backend_configuration", "backend_device", "backend_status"]

N_QUBITS = 5
_BASIS = ["ecr", "id", "rz", "sx", "x"]


def _coupling() -> list[list[int]]:
    pairs = [[q, q + 1] for q in range(N_QUBITS - 1)]
    return pairs + [[b, a] for a, b in pairs]


def backend_device(name: str) -> dict[str, Any]:
    """One entry of ``GET /backends`` (``{"devices": [...]}``), as the live API lists it."""
    return {
        "name": name,
        "n_qubits": N_QUBITS,
        "simulator": False,
        "operational": True,
        "pending_jobs": 0,
        "processor_type": {"family": "Eagle", "revision": "r3"},
        "basis_gates": _BASIS,
    }


def backend_configuration(name: str) -> dict[str, Any]:
    one = [[q] for q in range(N_QUBITS)]
    gates: list[dict[str, Any]] = [
        {"name": "id", "parameters": [], "qasm_def": "gate id q { U(0, 0, 0) q; }"},
        {"name": "rz", "parameters": ["theta"], "qasm_def": "gate rz(theta) q { U(0,0,theta) q; }"},
        {"name": "sx", "parameters": [], "qasm_def": "gate sx q { U(pi/2, 3*pi/2, pi/2) q; }"},
        {"name": "x", "parameters": [], "qasm_def": "gate x q { U(pi, 0, pi) q; }"},
    ]
    for gate in gates:
        gate["coupling_map"] = one
    ecr = "gate ecr q0, q1 { rzx(pi/4) q0, q1; x q0; rzx(-pi/4) q0, q1; }"
    gates.append({"name": "ecr", "parameters": [], "qasm_def": ecr, "coupling_map": _coupling()})
    return {
        "backend_name": name,
        "backend_version": "1.0.0",
        "n_qubits": N_QUBITS,
        "basis_gates": _BASIS,
        "gates": gates,
        "local": False,
        "simulator": False,
        "conditional": False,
        "open_pulse": False,
        "memory": True,
        "max_shots": 100000,
        "max_experiments": 300,
        "coupling_map": _coupling(),
        "supported_instructions": [*_BASIS, "delay", "measure", "reset"],
        "rep_delay_range": [0.0, 500.0],
        "default_rep_delay": 250.0,
        "dt": 0.5e-9,
        "dtm": 0.5e-9,
        "meas_map": [list(range(N_QUBITS))],
        "processor_type": {"family": "Eagle", "revision": 3},
        "online_date": "2024-01-01T00:00:00Z",
        "description": "quotaguard emulator backend",
    }


def backend_status(name: str) -> dict[str, Any]:
    """The wire form qiskit-ibm-runtime maps onto ``BackendStatus``."""
    return {"state": True, "status": "active", "length_queue": 0, "backend_version": "1.0.0"}
