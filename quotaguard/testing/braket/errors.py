"""Errors of the emulator's Braket half, answered as AWS does: the code in ``x-amzn-ErrorType``,
the text in ``{"message": ...}``."""

from __future__ import annotations

import uuid

from aiohttp import web

__all__ = ["ApiError", "error_response", "validation"]


class ApiError(Exception):
    """An AWS error answer: HTTP ``status``, error ``code`` and ``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def validation(message: str) -> ApiError:
    return ApiError(400, "ValidationException", message)


def error_response(exc: ApiError) -> web.Response:
    return web.json_response(
        {"message": exc.message},
        status=exc.status,
        headers={"x-amzn-ErrorType": exc.code, "x-amzn-RequestId": str(uuid.uuid4())},
    )
