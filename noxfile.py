"""nox sessions: lint, typecheck, tests (two aiohttp versions), docs, docs_browser (needs
Chromium; .ci/run installs it), bench, mutate (by hand);
and the matrix CI runs: tests_python (the suite per Python), integrations (per SDK release),
lowest (every floor).

The default local run stays on one interpreter. CI (.ci/run) puts python3.11/3.12/3.13 on PATH
and passes --error-on-missing-interpreters, so a missing one fails rather than being skipped.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "typecheck", "tests", "docs"]

PYPROJECT = nox.project.load_toml("pyproject.toml")
EXTRAS = ".[redis,qiskit,braket,postgres,otel,plot]"
# aioresponses 0.7.9 breaks on aiohttp 3.14 (pnuckowski/aioresponses#289): its tests run
# on the newest aiohttp it works with; everything else runs on the newest aiohttp.
AIORESPONSES_AIOHTTP = "aiohttp>=3.13,<3.14"
PYTHONS = ["3.11", "3.12", "3.13"]
# The oldest and newest SDK releases the integrations support; keep in step with
# TESTED_RELEASES in quotaguard/integrations/qiskit_runtime.py and the extras' floors.
SDKS = {
    "oldest": ["qiskit-ibm-runtime==0.50.*", "amazon-braket-sdk==1.90.*"],
    "newest": ["qiskit-ibm-runtime>=0.50,<0.52", "amazon-braket-sdk>=1.90"],
}
INTEGRATION_TESTS = ["tests/integrations", "tests/braket/test_sdk.py"]


def group(name: str) -> list[str]:
    return nox.project.dependency_groups(PYPROJECT, name)


@nox.session
def lint(session: nox.Session) -> None:
    session.install(*group("lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # The import layers and no cycles (contracts in pyproject.toml [tool.importlinter]).
    session.run("lint-imports")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install(EXTRAS, *group("typecheck"), *group("test"))
    session.run("mypy", "--strict", "quotaguard")
    # A user's script against the public API, under both checkers users run.
    session.run("mypy", "--strict", "tests/typing")
    session.run("pyright", "tests/typing")


@nox.session
@nox.parametrize("aiohttp", ["newest", "aioresponses"])
def tests(session: nox.Session, aiohttp: str) -> None:
    if aiohttp == "newest":
        session.install(EXTRAS, "aiohttp", *group("test"))
        session.run("python", "-c", "import aiohttp; print('aiohttp', aiohttp.__version__)")
        session.run("coverage", "erase")
        session.run(
            "coverage", "run", "-m", "pytest", "--ignore=tests/aioresponses", *session.posargs
        )
        session.run("coverage", "combine", success_codes=[0, 1])
        session.run("coverage", "report", "--fail-under=90")
    else:
        session.install(EXTRAS, AIORESPONSES_AIOHTTP, *group("test"), *group("aioresponses"))
        session.run("python", "-c", "import aiohttp; print('aiohttp', aiohttp.__version__)")
        session.run("pytest", "tests/aioresponses", *session.posargs)


@nox.session(python=PYTHONS)
def tests_python(session: nox.Session) -> None:
    """The whole suite on each supported Python (no coverage: `tests` measures it)."""
    session.install(EXTRAS, "aiohttp", *group("test"))
    session.run("python", "--version")
    session.run("pytest", "-q", "--ignore=tests/aioresponses", *session.posargs)


@nox.session(python="3.11")
@nox.parametrize("sdks", list(SDKS))
def integrations(session: nox.Session, sdks: str) -> None:
    """The SDK integration tests on the oldest and the newest supported SDK releases."""
    session.install(EXTRAS, *SDKS[sdks], *group("test"))
    session.run(
        "python",
        "-c",
        "import importlib.metadata as m; "
        "print(*(p + ' ' + m.version(p) for p in ('qiskit-ibm-runtime', 'amazon-braket-sdk')))",
    )
    session.run("pytest", "-q", *INTEGRATION_TESTS, *session.posargs)


# A fresh venv each time: uv keeps an installed package that satisfies a range, so a reused one
# would not be lowered back to the floors.
@nox.session(python="3.11", venv_backend="uv", reuse_venv=False)
def lowest(session: nox.Session) -> None:
    """The suite on the lowest version every direct dependency admits (its floor)."""
    session.install("--resolution", "lowest-direct", EXTRAS, *group("test"))
    session.run(
        "uv", "pip", "list", external=True, env={"VIRTUAL_ENV": session.virtualenv.location}
    )
    session.run("pytest", "-q", "--ignore=tests/aioresponses", *session.posargs)


def build_site(session: nox.Session) -> None:
    # The package too: docs/hooks.py imports it to write the rules reference.
    session.install(".", *group("docs"))
    session.run("mkdocs", "build", "--strict", "--site-dir", "site")


@nox.session
def docs(session: nox.Session) -> None:
    """The site, strict; then its HTML is read back: the rules table and the API entries."""
    build_site(session)
    session.run("python", "-m", "tests.docs.site_check", "site")


@nox.session
def docs_browser(session: nox.Session) -> None:
    """One page of the built site rendered by headless Chromium (.ci/run installs Debian's
    chromium where missing); not in the default sessions, so a developer without Chromium can
    still run the rest."""
    build_site(session)
    session.run("python", "-m", "tests.docs.site_check", "site", "--browser")


@nox.session
def bench(session: nox.Session) -> None:
    session.install(EXTRAS, *group("test"), *group("bench"), "aiobotocore")
    session.run("python", "-m", "bench", *session.posargs)


@nox.session
def mutate(session: nox.Session) -> None:
    """The curated mutants of the money path (tools/mutate.py); by hand, not in CI."""
    session.install(EXTRAS, "aiohttp", *group("test"))
    session.run("python", "tools/mutate.py", *session.posargs)
