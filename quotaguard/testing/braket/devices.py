"""Device documents the emulator's Braket half serves, parseable by the Braket SDK."""

from __future__ import annotations

import json

__all__ = ["RETIRED", "capabilities"]

#: Devices the emulator serves as ``RETIRED`` (Braket SDK 1.127.5 lists them under retired
#: names): ``CreateQuantumTask`` answers 410 ``DeviceRetiredException`` for them, as Braket does.
RETIRED = frozenset(
    {
        "arn:aws:braket:us-east-1::device/qpu/ionq/Aria-1",
        "arn:aws:braket:us-west-1::device/qpu/rigetti/Ankaa-3",
        "arn:aws:braket:::device/quantum-simulator/amazon/tn1",
    }
)


def capabilities(name: str, shots_range: tuple[int, int] = (1, 100_000)) -> str:
    """A gate-model QPU capabilities document that amazon-braket-schemas (and so the Braket
    SDK's ``AwsDevice``) parses."""
    header = {"name": "braket.device_schema.ionq.ionq_device_capabilities", "version": "1"}
    doc = {
        "braketSchemaHeader": header,
        "service": {
            "braketSchemaHeader": {
                "name": "braket.device_schema.device_service_properties",
                "version": "1",
            },
            "executionWindows": [
                {"executionDay": "Everyday", "windowStartHour": "00:00", "windowEndHour": "23:59"}
            ],
            "shotsRange": list(shots_range),
            "deviceDocumentation": {
                "imageUrl": "https://example.invalid/device.png",
                "summary": f"{name} (quotaguard emulator)",
                "externalDocumentationUrl": "https://example.invalid/",
            },
            "deviceLocation": "emulator",
            "updatedAt": "2025-01-01T00:00:00",
        },
        "action": {
            "braket.ir.openqasm.program": {
                "actionType": "braket.ir.openqasm.program",
                "version": ["1"],
                "supportedOperations": ["x", "y", "z", "h", "cnot", "rx", "ry", "rz"],
                "supportedResultTypes": [],
            }
        },
        "paradigm": {
            "braketSchemaHeader": {
                "name": "braket.device_schema.gate_model_qpu_paradigm_properties",
                "version": "1",
            },
            "qubitCount": 11,
            "nativeGateSet": ["gpi", "gpi2", "ms"],
            "connectivity": {"fullyConnected": True, "connectivityGraph": {}},
        },
        "deviceParameters": {},
    }
    return json.dumps(doc)
