"""``RequestBuilder``: from ``ApiClient.request``'s arguments to a ``Request`` and its pipeline.

Everything that does not change between calls is computed once here: the
base URL without its trailing slash, its query, its origin (for the "send
credentials only to the base URL's origin" rule) and the header template
(``User-Agent: interlink/<version>`` plus the client's ``headers=``), which
each call copies. Relative paths are appended to the base URL, as httpx's
``base_url`` does; absolute URLs are used as they are.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from multidict import CIMultiDict

from interlink import __version__
from interlink.client import _encode as enc
from interlink.client._call import IDEMPOTENT_METHODS
from interlink.client._defaults import PipelineFactory
from interlink.client._models import Request
from interlink.core.errors import ConfigError
from interlink.observability._logging import REQUEST_ID_HEADER, current_correlation_id
from interlink.resilience import Pipeline
from interlink.resilience import _validate as check

__all__ = ["RequestBuilder"]

_KNOWN_METHODS = IDEMPOTENT_METHODS | {"POST", "PATCH"}
_DEFAULT_PORTS = (80, 443)


def _header_template(headers: object, user_agent: object) -> CIMultiDict[str]:
    template: CIMultiDict[str] = CIMultiDict()
    if user_agent is not None and (not isinstance(user_agent, str) or not user_agent):
        check.fail("ApiClient", "user_agent", "a non-empty str or None", user_agent)
    template["User-Agent"] = user_agent or f"interlink/{__version__}"
    if headers is None:
        return template
    if (
        user_agent is not None
        and isinstance(headers, Mapping)
        and any(str(key).lower() == "user-agent" for key in headers)
    ):
        raise ConfigError("ApiClient: set the User-Agent with user_agent= or headers=, not both")
    enc.merge_headers(template, headers, "ApiClient headers")
    return template


class RequestBuilder:
    """Builds each call's ``Request`` and picks its pipeline (per host with ``breaker_per_host``)."""

    __slots__ = (
        "_base",
        "_base_params",
        "_factory",
        "_headers",
        "_per_host",
        "constant_headers",
        "origin",
        "pipelines",
    )

    def __init__(
        self,
        base_url: str,
        *,
        headers: object,
        user_agent: object,
        factory: PipelineFactory,
        per_host: bool,
    ) -> None:
        self.origin = enc.origin_of(base_url, "ApiClient base_url")
        base_url, basic = enc.split_userinfo(base_url)
        base, _, query = base_url.partition("#")[0].partition("?")
        self._base = base.rstrip("/")
        self._base_params = parse_qsl(query, keep_blank_values=True)
        self._headers = _header_template(headers, user_agent)
        self.constant_headers = self._headers.copy()
        """The headers every request carries, whatever its URL (the transport's defaults)."""
        if basic is not None:
            self._headers.setdefault("Authorization", basic)
        self._factory = factory
        self._per_host = per_host
        self.pipelines: dict[str, Pipeline] = {}
        """The per-host pipelines created so far, by host."""

    def target(self, path: str) -> tuple[str, Pipeline, bool, bool]:
        """``(url, pipeline, same_origin, relative)`` for a path or an absolute URL.

        An absolute URL keeps any userinfo here; ``build`` moves it to a header.
        """
        if not isinstance(path, str):
            raise ConfigError(f"path_or_url must be a str, got {path!r}")
        if path[:1] == "/":
            return self._base + path, self._factory.first, True, True
        scheme, sep, _ = path.partition("://")
        if not sep or "/" in scheme or "?" in scheme:
            if path and path[0] not in "?#":
                path = "/" + path
            return self._base + path, self._factory.first, True, True
        origin = enc.origin_of(path, "an absolute URL passed to ApiClient")
        same = origin == self.origin
        if same or not self._per_host:
            return path, self._factory.first, same, False
        host = origin[1] if origin[2] in _DEFAULT_PORTS else f"{origin[1]}:{origin[2]}"
        pipeline = self.pipelines.get(host)
        if pipeline is None:
            pipeline = self.pipelines[host] = self._factory.for_host(host)
        return path, pipeline, False, False

    def build(
        self,
        method: str,
        path_or_url: str,
        params: Any,
        json: Any,
        data: Any,
        content: Any,
        headers: Any,
        idempotency_key: bool | str | None,
    ) -> tuple[Request, Pipeline, bool]:
        """The call's ``Request`` (attempt 0), its pipeline, and whether it is on the base origin."""
        if method not in _KNOWN_METHODS:
            method = enc.check_method(method)
        if type(path_or_url) is str and path_or_url[:1] == "/":  # the common case, inlined
            url, pipeline, same_origin, relative = (
                self._base + path_or_url,
                self._factory.first,
                True,
                True,
            )
        else:
            url, pipeline, same_origin, relative = self.target(path_or_url)
        query = self._base_params.copy() if relative and self._base_params else []
        if params is not None:
            query += enc.encode_params(params)
        request_headers = self._headers.copy()
        if not relative and "@" in url:
            url, basic = enc.split_userinfo(url)
            if basic is not None:
                request_headers["Authorization"] = basic
        if headers is not None:
            enc.merge_headers(request_headers, headers)
        correlation = current_correlation_id()  # observability: the request's id goes upstream
        if correlation is not None and REQUEST_ID_HEADER not in request_headers:
            request_headers[REQUEST_ID_HEADER] = correlation
        body = None
        if json is not None or data is not None or content is not None:
            body = enc.encode_body(json, data, content, request_headers)
        if idempotency_key is not None and idempotency_key is not False:
            if idempotency_key is True:
                idempotency_key = str(uuid.uuid4())
            elif not isinstance(idempotency_key, str) or not idempotency_key.strip():
                raise ConfigError(
                    "idempotency_key must be True, a non-empty str or None, "
                    f"got {idempotency_key!r}"
                )
            request_headers["Idempotency-Key"] = idempotency_key
        request = Request(method, url, request_headers, query, body, {"attempt": 0})
        return request, pipeline, same_origin
