"""Which Braket devices exist and which are retired, from the Braket SDK's own list.

The Amazon Braket SDK names every device it has known in ``braket.devices.Devices``; a retired
one keeps its ARN under a name with a leading underscore (``_Aria1``, ``_Ankaa3``, ``_TN1``).
When the SDK is installed its list is read, else :data:`KNOWN_DEVICES` (a copy of it) serves.
A device either list marks retired is retired: a device never comes back from retirement, and
an older SDK beside a newer copy (or the reverse) must not make one current again.

Reading the list must not import the SDK (``import braket.devices`` takes ~6 s: it loads the
local simulators); the one file that holds the enum is executed on its own instead.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import logging
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

__all__ = ["KNOWN_DEVICES", "KNOWN_DEVICES_SDK", "DeviceList", "device_list", "sdk_devices"]

log = logging.getLogger("quotaguard.braket")

#: The SDK version :data:`KNOWN_DEVICES` was copied from.
KNOWN_DEVICES_SDK = "1.127.5"
#: ``braket.devices.Devices`` of amazon-braket-sdk 1.127.5: device ARN -> retired.
KNOWN_DEVICES: Mapping[str, bool] = {
    "arn:aws:braket:::device/quantum-simulator/amazon/sv1": False,
    "arn:aws:braket:::device/quantum-simulator/amazon/tn1": True,
    "arn:aws:braket:::device/quantum-simulator/amazon/dm1": False,
    "arn:aws:braket:eu-north-1::device/qpu/aqt/Ibex-Q1": False,
    "arn:aws:braket:::device/qpu/d-wave/Advantage_system1": True,
    "arn:aws:braket:::device/qpu/d-wave/Advantage_system3": True,
    "arn:aws:braket:::device/qpu/d-wave/Advantage_system4": True,
    "arn:aws:braket:us-west-2::device/qpu/d-wave/Advantage_system6": True,
    "arn:aws:braket:::device/qpu/d-wave/DW_2000Q_6": True,
    "arn:aws:braket:eu-north-1::device/qpu/iqm/Garnet": False,
    "arn:aws:braket:eu-north-1::device/qpu/iqm/Emerald": False,
    "arn:aws:braket:us-east-1::device/qpu/ionq/Harmony": True,
    "arn:aws:braket:us-east-1::device/qpu/ionq/Aria-1": True,
    "arn:aws:braket:us-east-1::device/qpu/ionq/Aria-2": True,
    "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1": False,
    "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-Enterprise-1": False,
    "arn:aws:braket:eu-west-2::device/qpu/oqc/Lucy": True,
    "arn:aws:braket:us-east-1::device/qpu/quera/Aquila": False,
    "arn:aws:braket:::device/qpu/rigetti/Aspen-8": True,
    "arn:aws:braket:::device/qpu/rigetti/Aspen-9": True,
    "arn:aws:braket:::device/qpu/rigetti/Aspen-10": True,
    "arn:aws:braket:::device/qpu/rigetti/Aspen-11": True,
    "arn:aws:braket:us-west-1::device/qpu/rigetti/Aspen-M-1": True,
    "arn:aws:braket:us-west-1::device/qpu/rigetti/Aspen-M-2": True,
    "arn:aws:braket:us-west-1::device/qpu/rigetti/Aspen-M-3": True,
    "arn:aws:braket:us-west-1::device/qpu/rigetti/Ankaa-2": True,
    "arn:aws:braket:us-west-1::device/qpu/rigetti/Ankaa-3": True,
    "arn:aws:braket:us-west-1::device/qpu/rigetti/Cepheus-1-108Q": False,
    "arn:aws:braket:us-east-1::device/qpu/xanadu/Borealis": True,
}


class DeviceList:
    """Device ARN -> retired, and where that was read (for messages)."""

    __slots__ = ("devices", "source")

    def __init__(self, devices: Mapping[str, bool], source: str) -> None:
        self.devices = dict(devices)
        self.source = source

    def retired(self) -> frozenset[str]:
        return frozenset(arn for arn, gone in self.devices.items() if gone)


def _enum_file() -> Path | None:
    try:
        spec = importlib.util.find_spec("braket")  # a namespace package: imports nothing
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or ()) if spec else ():
        path = Path(location) / "devices" / "devices.py"
        if path.is_file():
            return path
    return None


def _read(module: ModuleType) -> dict[str, bool]:
    out: dict[str, bool] = {}
    for group in vars(module.Devices).values():
        members = getattr(group, "__members__", None)
        if isinstance(group, type) and isinstance(members, Mapping):
            for name, member in members.items():
                out[str(member.value)] = name.startswith("_")
    return out


@functools.lru_cache(maxsize=1)
def sdk_devices() -> DeviceList | None:
    """The installed Braket SDK's device list, or ``None`` when the SDK is not installed (or
    its list cannot be read: then the copy serves, with a warning)."""
    path = _enum_file()
    if path is None:
        return None
    try:
        version = importlib.metadata.version("amazon-braket-sdk")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown version"
    try:
        spec = importlib.util.spec_from_file_location("_quotaguard_braket_sdk_devices", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"no loader for {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        devices = _read(module)
    except Exception as exc:  # a reshaped SDK file must not stop pricing: the copy still works
        log.warning(
            "cannot read the Braket SDK's device list at %s (%s); using quotaguard's "
            "copy from SDK %s",
            path,
            exc,
            KNOWN_DEVICES_SDK,
        )
        return None
    if not devices:
        return None
    return DeviceList(devices, f"the Braket SDK's device list (amazon-braket-sdk {version})")


def device_list(sdk: DeviceList | None = None) -> DeviceList:
    """Every device either list knows; retired where either says so (see the module text)."""
    if sdk is None:
        return DeviceList(KNOWN_DEVICES, f"the Braket SDK {KNOWN_DEVICES_SDK} device list")
    merged = {**KNOWN_DEVICES, **sdk.devices}
    for arn, gone in KNOWN_DEVICES.items():
        merged[arn] = merged[arn] or gone
    return DeviceList(merged, sdk.source)
