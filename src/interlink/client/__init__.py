"""The resilient API client: ``ApiClient``, its auth strategies, typed responses,
pagination and upstream quota tracking, over a small ``Transport`` protocol.
"""

from interlink.client._auth import (
    ApiKey,
    BasicAuth,
    BearerFrom,
    BearerToken,
    SigningAuth,
)
from interlink.client._client import ApiClient
from interlink.client._health import ClientHealth
from interlink.client._httpx import HttpxTransport
from interlink.client._models import (
    Auth,
    Headers,
    Request,
    Response,
    Send,
    StreamingResponse,
    Transport,
)
from interlink.client._oauth2 import OAuth2ClientCredentials
from interlink.client._pagination import Cursor, LinkHeader, PageNumber, PaginationStyle
from interlink.client._quota import Quota, parse_quota
from interlink.client._redact import redact_url
from interlink.client._transport import AiohttpTransport
from interlink.core.errors import (
    ClientError,
    ClientTimeoutError,
    ConnectError,
    ConnectionLostError,
    HttpStatusError,
    ResponseValidationError,
)

__all__ = [
    "AiohttpTransport",
    "ApiClient",
    "ApiKey",
    "Auth",
    "BasicAuth",
    "BearerFrom",
    "BearerToken",
    "ClientError",
    "ClientHealth",
    "ClientTimeoutError",
    "ConnectError",
    "ConnectionLostError",
    "Cursor",
    "Headers",
    "HttpStatusError",
    "HttpxTransport",
    "LinkHeader",
    "OAuth2ClientCredentials",
    "PageNumber",
    "PaginationStyle",
    "Quota",
    "Request",
    "Response",
    "ResponseValidationError",
    "Send",
    "SigningAuth",
    "StreamingResponse",
    "Transport",
    "parse_quota",
    "redact_url",
]
