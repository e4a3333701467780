"""The optional extras, and the one wording of "this needs an extra that is not installed".

The hint names the packages themselves, so it works however quotaguard was installed: from
PyPI (``pip install 'quotaguard[redis]'``), or from a checkout, where ``quotaguard[redis]``
means nothing to pip unless it is run in that checkout.
"""

from __future__ import annotations

from quotaguard.errors import MissingDependency

__all__ = ["EXTRAS", "missing"]

#: Each extra's requirements, as pyproject.toml's [project.optional-dependencies] has them
#: (a test holds the two together).
EXTRAS: dict[str, tuple[str, ...]] = {
    "redis": ("redis>=6.0", "hiredis>=3.0"),
    "qiskit": ("qiskit-ibm-runtime>=0.50",),
    "braket": ("amazon-braket-sdk>=1.90",),
    "postgres": ("asyncpg>=0.30",),
    "otel": ("opentelemetry-api>=1.30",),
    "plot": ("matplotlib>=3.9",),
}


def missing(extra: str, needed_by: str) -> MissingDependency:
    """The error for ``needed_by`` (``"RedisLedger"``) when ``extra``'s packages are absent."""
    packages = " ".join(f"'{requirement}'" for requirement in EXTRAS[extra])
    return MissingDependency(
        extra,
        f"{needed_by} needs the optional {extra!r} dependencies, which are not installed: "
        f"pip install {packages} (what the quotaguard[{extra}] extra installs; from a "
        f"checkout, pip install -e '.[{extra}]' does the same)",
    )
