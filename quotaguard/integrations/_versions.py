"""Which SDK releases an integration was tested with, and the opt-in for newer ones.

An integration hooks private SDK methods, so a release nobody has tested may route submissions
around the hooks. The hooks are feature-detected (missing ones always refuse); on top of that a
release newer than the tested ones is refused unless ``QUOTAGUARD_ALLOW_UNTESTED_SDK=1``, which
guards it anyway and warns once per SDK version. Releases older than the oldest tested one are
refused: their submission paths are known to differ.
"""

from __future__ import annotations

import os
import re
import threading
import warnings
from collections.abc import Sequence

from quotaguard.integrations._bridge import IntegrationError

__all__ = ["ALLOW_UNTESTED", "UntestedSDKWarning", "check_tested", "release"]

ALLOW_UNTESTED = "QUOTAGUARD_ALLOW_UNTESTED_SDK"

_warned: set[tuple[str, str]] = set()
_lock = threading.Lock()


class UntestedSDKWarning(UserWarning):
    """An SDK release newer than the tested ones is guarded because the user opted in."""


def release(version: str) -> tuple[int, int] | None:
    """``(major, minor)`` of a version string such as ``0.51.0rc1``; None if it has none."""
    found = re.match(r"(\d+)\.(\d+)", version)
    return (int(found[1]), int(found[2])) if found else None


def check_tested(sdk: str, version: str, tested: Sequence[tuple[int, int]]) -> None:
    """Pass for a tested release; refuse an older one; refuse a newer (or unparseable) one
    unless the opt-in is set, in which case warn once for this SDK version."""
    key = release(version)
    if key in tested:
        return
    span = f">={_text(tested[0])},<{tested[-1][0]}.{tested[-1][1] + 1}"
    if key is not None and key < tested[0]:
        raise IntegrationError(
            f"{sdk} {version} is older than quotaguard's integration supports ({sdk}{span}); "
            f"its submission path differs, so it cannot be guarded. Upgrade {sdk}"
        )
    if os.environ.get(ALLOW_UNTESTED) == "1":
        with _lock:
            first = (sdk, version) not in _warned
            _warned.add((sdk, version))
        if first:
            warnings.warn(
                f"{sdk} {version} is newer than the releases quotaguard's integration was "
                f"tested with ({span}); guarding it because {ALLOW_UNTESTED}=1",
                UntestedSDKWarning,
                stacklevel=3,
            )
        return
    raise IntegrationError(
        f"{sdk} {version} is newer than the releases quotaguard's integration was tested with "
        f"({span}); its submission path may differ. Set {ALLOW_UNTESTED}=1 to guard it anyway "
        f"(warned once), or install {sdk}{span}"
    )


def _text(key: tuple[int, int]) -> str:
    return f"{key[0]}.{key[1]}"
