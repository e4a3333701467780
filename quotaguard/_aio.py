"""``async with`` for anything with an ``aclose()``: one definition for clients, ledgers, guard."""

from __future__ import annotations

from types import TracebackType
from typing import Self

__all__ = ["AsyncClosing"]


class AsyncClosing:
    """``async with x:`` closes ``x`` on exit; subclasses define ``aclose()``."""

    async def aclose(self) -> None:  # pragma: no cover - every subclass overrides it
        return None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
