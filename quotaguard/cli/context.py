"""What every command shares: settings from the click context, the ledger, the provider
clients, a guard built from them, and the mapping of errors to one line and an exit code.

Exit codes: 0 ok / admitted, 1 rejected, 2 usage or configuration error (one line on stderr).
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import attrs
import click

from quotaguard.braket import BraketClient
from quotaguard.cli.output import EXIT_OK, EXIT_REJECTED, fail
from quotaguard.cli.settings import Settings, load_settings
from quotaguard.errors import BudgetExceeded, InvalidInput, QuotaGuardError
from quotaguard.guard import BudgetGuard
from quotaguard.ibm import IBMPolicy, IBMRuntimeClient
from quotaguard.ledger import Ledger, MemoryLedger, SQLiteLedger
from quotaguard.ledger.sqlite.schema import default_path

__all__ = [
    "OneLineErrors",
    "Unread",
    "braket_client",
    "ibm_client",
    "ibm_policy",
    "missing_ledger",
    "not_configured",
    "open_guard",
    "open_ledger",
    "run_async",
    "settings_of",
]

P = ParamSpec("P")
R = TypeVar("R")


def run_async(fn: Callable[P, Awaitable[R]]) -> Callable[P, R]:
    """Run an async command; map configuration errors to exit 2 with a one-line reason."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return asyncio.run(fn(*args, **kwargs))  # type: ignore[arg-type]
        except BudgetExceeded as exc:
            fail(str(exc), EXIT_REJECTED)
        except InvalidInput as exc:
            fail(str(exc))
        except QuotaGuardError as exc:
            fail(str(exc))
        except TimeoutError as exc:  # a bound that no quotaguard error worded
            fail(f"timed out: {str(exc) or 'no answer in time'}")
        except KeyboardInterrupt:
            sys.exit(130)
        raise AssertionError("unreachable")

    return wrapper


class OneLineErrors(click.Group):
    """Click's own usage errors in the documented form: ``quotaguard: <message>``, exit 2."""

    def main(  # type: ignore[override]
        self, args: Any = None, prog_name: str | None = None, **extra: Any
    ) -> Any:
        if extra.get("standalone_mode") is False:
            return super().main(args, prog_name, **extra)
        try:
            code = super().main(args, prog_name, **{**extra, "standalone_mode": False})
        except click.ClickException as exc:
            fail(exc.format_message(), exc.exit_code)
        except click.Abort:
            fail("aborted", EXIT_REJECTED)
        sys.exit(code if isinstance(code, int) else EXIT_OK)


@attrs.frozen
class Unread:
    """What the root group was given (``--ledger`` as a setting, ``--config``); read later."""

    flags: dict[str, object]
    path: Path | None


def settings_of(ctx: click.Context) -> Settings:
    """The settings, read on first use (the root group keeps only an ``Unread``), so
    ``--help``, ``demo`` and ``emulator`` work whatever the config file holds."""
    root = ctx.find_root()
    if isinstance(root.obj, Settings):
        return root.obj
    given: Unread = root.obj
    try:
        settings = load_settings(flags=given.flags, path=given.path)
    except InvalidInput as exc:
        fail(str(exc))
    root.obj = settings
    return settings


def open_ledger(settings: Settings, *, reading: bool = False) -> Ledger:
    """The configured ledger. A reading command (``reading=True``) never creates one: with no
    SQLite file yet it reads an empty ledger in memory, creating no file and no directory."""
    if settings.ledger_url:
        # Only a redis:// ledger needs the optional ``redis`` package.
        from quotaguard.ledger import RedisLedger

        return RedisLedger(settings.ledger_url)
    path = missing_ledger(settings)
    if reading and path is not None:
        return MemoryLedger()
    return SQLiteLedger(settings.ledger_path or default_path())


def missing_ledger(settings: Settings) -> Path | None:
    """The SQLite ledger's path when no file is there yet (``None`` when it exists, or the
    ledger is in Redis)."""
    if settings.ledger_url:
        return None
    path = settings.ledger_path or default_path()
    return None if path.exists() else path


def ibm_client(settings: Settings, *, required: bool) -> Any:
    try:
        return IBMRuntimeClient.from_config(
            service_crn=settings.ibm_service_crn,
            region=settings.ibm_region,
            base_url=settings.ibm_base_url,
            iam_url=settings.ibm_iam_url,
        )
    except InvalidInput as exc:
        mentioned = settings.ibm_service_crn or settings.ibm_base_url or _env_key()
        if required or mentioned or not not_configured(exc):
            raise
        return None


def ibm_policy(settings: Settings) -> IBMPolicy:
    return IBMPolicy(plan=settings.ibm_plan)


def _env_key() -> bool:
    return bool(os.environ.get("IBMCLOUD_API_KEY") or os.environ.get("QISKIT_IBM_TOKEN"))


def braket_client(settings: Settings, *, required: bool) -> Any:
    try:
        return BraketClient(settings.braket_region, endpoint_url=settings.braket_endpoint_url)
    except InvalidInput as exc:
        if required or settings.braket_endpoint_url or not not_configured(exc):
            raise
        return None


# A provider nobody configured is skipped by ``status``; one configured wrongly or only in
# part (a CRN but no API key, an endpoint but no region) is an error.
_NOT_CONFIGURED = ("no IBM Cloud API key", "no Qiskit Runtime instance CRN", "no AWS region")


def not_configured(exc: InvalidInput) -> bool:
    return exc.reason.startswith(_NOT_CONFIGURED)


@asynccontextmanager
async def open_guard(
    settings: Settings,
    *,
    ibm: bool | None = None,
    braket: bool | None = None,
    reading: bool = False,
) -> AsyncIterator[BudgetGuard]:
    """A guard with whichever providers are configured (``True`` = required); ``reading``:
    see :func:`open_ledger`."""
    async with AsyncExitStack() as stack:
        ibm_c = ibm_client(settings, required=bool(ibm)) if ibm is not False else None
        braket_c = braket_client(settings, required=bool(braket)) if braket is not False else None
        for client in (ibm_c, braket_c):
            if client is not None:
                await stack.enter_async_context(client)
        ledger: Ledger = await stack.enter_async_context(
            open_ledger(settings, reading=reading)  # type: ignore[arg-type]
        )
        guard = BudgetGuard(
            ledger,
            ibm=ibm_c,
            braket=braket_c,
            ibm_price_per_second=settings.ibm_price_per_second,
            ibm_policy=ibm_policy(settings) if ibm_c is not None else None,
            fail_mode=settings.fail_mode,  # type: ignore[arg-type]
            state_ttl=timedelta(seconds=settings.state_ttl_seconds),
            max_staleness=timedelta(seconds=max(600, settings.state_ttl_seconds)),
            provider_alert_levels=settings.alert_levels,
        )
        yield await stack.enter_async_context(guard)
