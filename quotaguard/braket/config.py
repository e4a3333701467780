"""Braket's region, endpoint and retry settings, as botocore resolves them for
``boto3.client("braket")``: the guard checks budgets at the endpoint the user's SDK sends to.

Built from botocore's own pieces, not a botocore client (building one costs ~200 ms on a
fresh session, ~7 ms on a warm one; these ~0.1 ms once the rule set is loaded, once per
process): its configured-endpoint provider (``AWS_ENDPOINT_URL_BRAKET``, ``AWS_ENDPOINT_URL``,
a ``[services]`` section, the profile's ``endpoint_url``), its config store (FIPS, dual-stack,
region, retries) and the ``braket`` endpoint rule set, evaluated once per ``BraketClient``,
never per call.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import botocore.configprovider
import botocore.endpoint_provider
import botocore.exceptions
import botocore.session

from quotaguard._http import RetryPolicy, check_endpoint
from quotaguard.braket.checks import check_region
from quotaguard.errors import InvalidInput

__all__ = ["resolve_endpoint", "resolve_region", "resolve_retry"]

SERVICE = "braket"
#: botocore's total attempts per retry mode when only the mode is set (``_retry.json``'s
#: legacy 4 retries + 1; ``botocore.retries.standard.DEFAULT_MAX_ATTEMPTS``).
MODE_ATTEMPTS = {"legacy": 5, "standard": 3, "adaptive": 3}


def _client_config(session: botocore.session.Session, name: str) -> Any:
    # The session's default client Config outranks environment and files, as in create_client.
    config = session.get_default_client_config()
    return None if config is None else getattr(config, name, None)


def _user_set(session: botocore.session.Session, name: str) -> Any:
    """``name`` from the session, environment or profile, as botocore reads it, but ``None``
    where only botocore's default would answer (``retry_mode`` defaults to ``standard``)."""
    config_name, env_var, _, convert = session.session_var_map[name]
    chain = botocore.configprovider.ConfigChainFactory(session=session).create_config_chain(
        instance_name=name,
        env_var_names=env_var,
        config_property_names=config_name,
        default=None,
        conversion_func=convert,
    )
    return chain.provide()


def _flag(session: botocore.session.Session, name: str) -> bool:
    value = _client_config(session, name)
    if value is None:
        value = session.get_config_variable(name)
    return bool(value)


def resolve_region(session: botocore.session.Session, region: str | None = None) -> str:
    """The argument; else botocore's answer (the session's client config, then
    ``AWS_DEFAULT_REGION``, then the profile's ``region``); else ``AWS_REGION``, which the AWS
    SDKs document but botocore does not read (it never outranks botocore's own answer)."""
    resolved = (
        region
        or _client_config(session, "region_name")
        or session.get_config_variable("region")
        or os.environ.get("AWS_REGION")
    )
    if not resolved:
        # The CLI rewrites this wording into its own (quotaguard/cli/output.py).
        raise InvalidInput("region", "no AWS region; pass region= or set AWS_REGION")
    return check_region(resolved)


def configured_endpoint_url(session: botocore.session.Session) -> str | None:
    """``AWS_ENDPOINT_URL_BRAKET``, ``AWS_ENDPOINT_URL``, the profile's ``[services]`` section,
    then its ``endpoint_url`` (botocore's order), unless configured endpoints are ignored."""
    ignore = _client_config(session, "ignore_configured_endpoint_urls")
    if ignore is None:
        ignore = session.get_config_variable("ignore_configured_endpoint_urls")
    if ignore:
        return None
    provider = botocore.configprovider.ConfiguredEndpointProvider(
        full_config=session.full_config,
        scoped_config=session.get_scoped_config(),
        client_name=SERVICE,
    )
    url: str | None = provider.provide()
    return url


_RULES: dict[tuple[str, ...], botocore.endpoint_provider.EndpointProvider] = {}


def _rules(session: botocore.session.Session) -> botocore.endpoint_provider.EndpointProvider:
    """The ``braket`` rule set, loaded once per process and data path (a fresh session would
    load it again: ~40 ms, most of a ``BraketClient``'s construction)."""
    loader = session.get_component("data_loader")
    key = tuple(loader.search_paths)
    rules = _RULES.get(key)
    if rules is None:
        rules = _RULES[key] = botocore.endpoint_provider.EndpointProvider(
            loader.load_service_model(SERVICE, "endpoint-rule-set-1"),
            loader.load_data("partitions"),
        )
    return rules


def resolve_endpoint(
    session: botocore.session.Session, region: str, endpoint_url: str | None = None
) -> str:
    """The base URL a ``boto3.client("braket", region_name=region)`` sends to: ``endpoint_url``,
    else the configured one, else the rule set's for the region, FIPS and dual-stack (which
    botocore ignores beside a given endpoint)."""
    given = endpoint_url or configured_endpoint_url(session)
    params: dict[str, Any] = {
        "Region": region,
        "UseFIPS": given is None and _flag(session, "use_fips_endpoint"),
        "UseDualStack": given is None and _flag(session, "use_dualstack_endpoint"),
    }
    if given is not None:
        params["Endpoint"] = given
    try:
        url: str = _rules(session).resolve_endpoint(**params).url
    except botocore.exceptions.EndpointResolutionError as exc:
        raise InvalidInput("endpoint_url", f"botocore resolves no Braket endpoint: {exc}") from None
    return check_endpoint(url, "endpoint_url")


def resolve_retry(session: botocore.session.Session) -> RetryPolicy | None:
    """The retry settings botocore reads (the session's client config ``retries``, then
    ``AWS_MAX_ATTEMPTS``/``AWS_RETRY_MODE``, then the profile's ``max_attempts``/``retry_mode``)
    as a :class:`RetryPolicy`, or ``None`` where none is set (the library's default applies).

    Only the number of attempts is taken: botocore's total attempts, or its default for the
    mode. The waits stay the library's (full jitter, capped). ``adaptive`` (client-side rate
    limiting) is not implemented: it retries as ``standard``, with a warning.
    """
    retries = _client_config(session, "retries") or {}
    mode = retries.get("mode") or _user_set(session, "retry_mode")
    if "total_max_attempts" in retries:
        attempts = retries["total_max_attempts"]
    elif "max_attempts" in retries:  # Config's max_attempts counts retries, not attempts
        attempts = retries["max_attempts"] + 1
    else:
        try:
            attempts = _user_set(session, "max_attempts")
        except ValueError:
            raise InvalidInput(
                "AWS_MAX_ATTEMPTS", "max_attempts must be a whole number of attempts"
            ) from None
    if mode is None and attempts is None:
        return None
    if mode is not None and mode not in MODE_ATTEMPTS:
        raise InvalidInput(
            "AWS_RETRY_MODE", f"retry_mode must be legacy, standard or adaptive, got {mode!r}"
        )
    if attempts is None:
        attempts = MODE_ATTEMPTS[mode]
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise InvalidInput(
            "AWS_MAX_ATTEMPTS", f"max_attempts counts the first try: at least 1, got {attempts!r}"
        )
    if mode == "adaptive":
        warnings.warn(
            "retry_mode 'adaptive' (client-side rate limiting) is not implemented by quotaguard;"
            " Braket calls retry as in 'standard' mode",
            UserWarning,
            stacklevel=3,
        )
    return RetryPolicy(attempts=attempts)
