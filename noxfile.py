"""nox sessions: lint, typecheck, tests (two aiohttp versions), docs, bench."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "typecheck", "tests", "docs"]

PYPROJECT = nox.project.load_toml("pyproject.toml")
EXTRAS = ".[redis,qiskit,braket]"
# aioresponses 0.7.9 breaks on aiohttp 3.14 (pnuckowski/aioresponses#289): its tests run
# on the newest aiohttp it works with; everything else runs on the newest aiohttp.
AIORESPONSES_AIOHTTP = "aiohttp>=3.13,<3.14"


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


@nox.session
def docs(session: nox.Session) -> None:
    session.install(*group("docs"))
    session.run("mkdocs", "build", "--strict", "--site-dir", "site")


@nox.session
def bench(session: nox.Session) -> None:
    session.install(EXTRAS, *group("test"), *group("bench"), "aiobotocore")
    session.run("python", "-m", "bench", *session.posargs)
