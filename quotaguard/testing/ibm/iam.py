"""The emulator's IAM: ``POST /identity/token`` exchanges an API key for a bearer token."""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from quotaguard.testing.ibm.state import IBMState
from quotaguard.testing.ibm.wire import Reject, json_response

__all__ = ["GRANT_TYPE", "bearer_account", "exchange_api_key", "jwt_shaped"]

GRANT_TYPE = "urn:ibm:params:oauth:grant-type:apikey"


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def jwt_shaped(account: str, now: datetime, expires: datetime) -> str:
    """An opaque token shaped like IAM's JWT: qiskit-ibm-runtime (ibm-cloud-sdk-core) decodes
    ``exp``/``iat`` from it without checking the signature, and falls back to sending the raw
    API key when it cannot."""
    claims = {"sub": account, "iat": int(now.timestamp()), "exp": int(expires.timestamp())}
    claims["jti"] = secrets.token_urlsafe(16)
    signature = secrets.token_urlsafe(24)
    return f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64(claims)}.{signature}"


def _iam_error(code: str, message: str) -> web.Response:
    context = {"requestId": str(uuid.uuid4())}
    return json_response({"errorCode": code, "errorMessage": message, "context": context}, 400)


async def exchange_api_key(request: web.Request, state: IBMState) -> web.StreamResponse:
    """IAM's answer to ``grant_type=...apikey&apikey=...``: a token, or an IAM error body."""
    form = await request.post()
    if form.get("grant_type") != GRANT_TYPE or not form.get("apikey"):
        return _iam_error("BXNIM0109E", "Property missing or empty: grant_type or apikey")
    account = state.api_keys.get(str(form["apikey"]))
    if account is None:
        return _iam_error("BXNIM0415E", "Provided API key could not be found.")
    now = state.clock()
    expires = now + timedelta(seconds=state.token_lifetime)
    token = jwt_shaped(account, now, expires)
    state.tokens[token] = (account, expires)
    return json_response(
        {
            "access_token": token,
            "refresh_token": "not_supported",
            "token_type": "Bearer",
            "expires_in": state.token_lifetime,
            "expiration": int(expires.timestamp()),
            "scope": "ibm openid",
        }
    )


def bearer_account(request: web.Request, state: IBMState) -> str:
    """The account of the request's unexpired bearer token; 401 without one."""
    auth = request.headers.get("Authorization", "")
    token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
    entry = state.tokens.get(token)
    if entry is None or state.clock() >= entry[1]:
        raise Reject(401, "unauthorized", "Missing, invalid or expired bearer token")
    return entry[0]
