"""A stand-in for ``asyncio.sleep`` that only records, for the clients' ``sleep=``."""

from __future__ import annotations

__all__ = ["Sleeps"]


class Sleeps:
    """Records every backoff delay instead of sleeping, so retry tests are instant."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
