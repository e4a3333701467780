"""Which proxy a provider request goes through: the caller's mapping, else the environment's.

A pure reading of a URL and some settings; no I/O.
"""

from __future__ import annotations

import functools
import os
import urllib.request
from collections.abc import Mapping
from urllib.parse import urlsplit

__all__ = ["env_proxy", "select_proxy"]


def select_proxy(url: str, proxies: Mapping[str, str] | None) -> str | None:
    """The proxy requests' ``select_proxy`` picks: ``scheme://host``, ``scheme``,
    ``all://host``, ``all``, first found."""
    if not proxies:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    keys = (f"{parts.scheme}://{host}", parts.scheme, f"all://{host}", "all")
    return next((proxies[k] for k in keys if k in proxies), None)


#: The environment's proxy settings, lower-case name first (as urllib reads them).
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def env_proxy(url: str) -> str | None:
    """The proxy ``HTTP(S)_PROXY``/``ALL_PROXY``/``NO_PROXY`` give ``url`` now, as urllib and
    botocore read them. Read on the loop, per request (a few dictionary reads): aiohttp's own
    ``trust_env`` looks them up, with netrc, on a worker thread per request, which was most of
    a provider call's client CPU."""
    values = tuple(os.environ.get(name) or os.environ.get(name.upper()) for name in _PROXY_VARS)
    if not any(values[:3]):
        return None
    parts = urlsplit(url)
    return _proxy_for(parts.scheme, parts.hostname or "", values)


@functools.lru_cache(maxsize=256)
def _proxy_for(scheme: str, host: str, values: tuple[str | None, ...]) -> str | None:
    http, https, every, bypass = values
    proxies = {k: v for k, v in (("http", http), ("https", https), ("all", every)) if v}
    # urllib's NO_PROXY matching (undocumented in typeshed, public in urllib since 3.0).
    if bypass and urllib.request.proxy_bypass_environment(host, {"no": bypass}):  # type: ignore[attr-defined]
        return None
    return proxies.get(scheme) or proxies.get("all")
