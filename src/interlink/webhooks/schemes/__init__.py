"""The built-in signature schemes; importing this package registers every one of them."""

from interlink.webhooks.schemes import (
    _convoy,
    _discord,
    _github,
    _hmac,
    _paddle,
    _shopify,
    _slack,
    _square,
    _standard,
    _stripe,
    _twilio,
    _twitch,
    _zoom,
)

__all__: list[str] = []

del _convoy, _discord, _github, _hmac, _paddle, _shopify, _slack, _square
del _standard, _stripe, _twilio, _twitch, _zoom
