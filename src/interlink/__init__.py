"""interlink: the integration layer of a Python service.

Call third-party APIs without falling over when they do, receive their webhooks
without losing one, move messages with retries and dead-lettering, and see all
of it. The public surface lives in the subpackages: ``interlink.core``,
``interlink.resilience`` and ``interlink.testing``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
