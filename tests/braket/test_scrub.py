"""The scrubber at the HTTP boundary: what a provider's error text may quote of our requests.

Unit cases of :func:`quotaguard._wire.scrub` and :func:`~quotaguard._wire.scrub_response`
(the end-to-end cases, through the clients and the guard against the emulator, are in
``tests/reliability/test_scrub_secrets.py``).
"""

from __future__ import annotations

import json

import pytest

from quotaguard._wire import REDACTED, Response, scrub, scrub_response
from tests._support.secrets import (
    AWS_SECRET_ACCESS_KEY,
    AWS_SESSION_TOKEN,
    IBM_API_KEY,
)

HASH = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize(
    ("text", "gone", "kept"),
    [
        (
            "expected\n'POST\n/quantum-task\n\nhost:braket\n"
            f"x-amz-security-token:{AWS_SESSION_TOKEN}\n\nhost;x-amz-security-token\n{HASH}'\n"
            "and more",
            [AWS_SESSION_TOKEN, "host;x-amz-security-token", HASH],
            ["expected", "and more"],
        ),
        (
            f"string to sign\n'AWS4-HMAC-SHA256\n20261121T120000Z\n20261121/us-east-1/braket/"
            f"aws4_request\n{HASH}'",
            [HASH, "aws4_request"],
            ["string to sign"],
        ),
        (
            "Authorization: AWS4-HMAC-SHA256 Credential=AKIDX/20261121/us-east-1/braket/"
            f"aws4_request, SignedHeaders=host, Signature={HASH}\nnext line",
            ["AKIDX", HASH, "SignedHeaders"],
            ["Authorization: AWS4-HMAC-SHA256", "next line"],
        ),
        (
            f"X-Amz-Security-Token: {AWS_SESSION_TOKEN}, x-amz-date: 20261121",
            [AWS_SESSION_TOKEN],
            ["X-Amz-Security-Token", "x-amz-date: 20261121"],
        ),
        (
            f"GET /x?X-Amz-Security-Token={AWS_SESSION_TOKEN}&X-Amz-Signature={HASH}&a=1",
            [AWS_SESSION_TOKEN, HASH],
            ["a=1"],
        ),
        ("header authorization=Bearer eyJ.abc.def-_ was refused", ["eyJ.abc.def-_"], ["refused"]),
        (f"apikey={IBM_API_KEY} unknown; api_key: {IBM_API_KEY}", [IBM_API_KEY], ["unknown"]),
    ],
    ids=[
        "canonical-request",
        "string-to-sign",
        "authorization",
        "token-header",
        "query",
        "bearer",
        "api-key",
    ],
)
def test_shapes_are_redacted_and_the_words_stay(
    text: str, gone: list[str], kept: list[str]
) -> None:
    out = scrub(text)
    assert REDACTED in out
    assert [g for g in gone if g in out] == []
    assert [k for k in kept if k not in out] == []


def test_held_secrets_are_redacted_wherever_they_appear() -> None:
    text = f"your key {AWS_SECRET_ACCESS_KEY} (that is, {AWS_SECRET_ACCESS_KEY}) is wrong"
    assert scrub(text, [AWS_SECRET_ACCESS_KEY, ""]) == (
        f"your key {REDACTED} (that is, {REDACTED}) is wrong"
    )
    assert scrub("nothing to hide", [AWS_SECRET_ACCESS_KEY]) == "nothing to hide"


def _response(body: bytes, **headers: str) -> Response:
    return Response(403, headers, body, "https://braket.us-east-1.amazonaws.com/x")


def test_a_json_error_body_stays_json_and_is_scrubbed_in_every_string() -> None:
    # JSON may escape "/" as "\/": the secret is matched in the decoded strings.
    escaped = json.dumps(AWS_SECRET_ACCESS_KEY).replace("/", "\\/")
    body = f'{{"message": "bad key {escaped[1:-1]}", "nested": [{{"{AWS_SESSION_TOKEN}": 1}}]}}'
    out = scrub_response(_response(body.encode()), [AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN])
    data = json.loads(out.body)
    assert data == {"message": f"bad key {REDACTED}", "nested": [{REDACTED: 1}]}


def test_an_answer_with_nothing_to_hide_is_left_as_it_is() -> None:
    original = _response(b'{"message": "no such device", "n": 1.50}', **{"x-amzn-requestid": "r1"})
    out = scrub_response(original, [AWS_SECRET_ACCESS_KEY])
    assert out.body is original.body  # not re-encoded: 1.50 stays 1.50
    assert out.headers == original.headers


def test_a_text_body_and_header_values_are_scrubbed() -> None:
    original = _response(
        f"denied: Bearer {AWS_SESSION_TOKEN}".encode(),
        **{"x-amzn-errortype": "AccessDenied", "x-echo": f"token={AWS_SESSION_TOKEN}"},
    )
    out = scrub_response(original)
    assert out.body == f"denied: Bearer {REDACTED}".encode()
    assert out.headers["x-echo"] == f"token={REDACTED}"
    assert out.headers["x-amzn-errortype"] == "AccessDenied"
