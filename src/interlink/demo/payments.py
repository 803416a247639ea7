"""The demo's queue handler: enrich a payment through the provider's API, forward it inside.

``examples/demo.yaml`` names it (``handler: interlink.demo.payments:enrich_and_forward``).
It gets the message after the queue's transform (``examples/payment_mapping.yaml``) and a
context whose ``clients`` are the config's API clients, each already behind its resilience
pipeline: the handler says what to call, the pipeline deals with the upstream's bad days.
An exception it lets through makes the queue try the message again later.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from interlink.service._build import HandlerContext

__all__ = ["PaymentDetails", "enrich_and_forward"]


class PaymentDetails(BaseModel):
    """What the provider's API says about a payment (``GET /v1/payments/{id}``)."""

    id: str
    fee: int
    """The provider's fee, in minor units."""
    risk: str
    """The provider's fraud score: ``low``, ``medium`` or ``high``."""


async def enrich_and_forward(payment: dict[str, Any], ctx: HandlerContext) -> None:
    """Fetch the payment's fee and risk from the provider, then store it in the internal service.

    The message id is the idempotency key of the forward, so a message handled twice (a retry
    after the internal service stored it but its answer was lost) is stored once.
    """
    details: PaymentDetails = await ctx.clients["provider"].get(
        f"/v1/payments/{payment['payment_id']}", response_model=PaymentDetails
    )
    record = {
        **payment,
        "fee": details.fee,
        "net_amount": payment["amount"] - details.fee,
        "risk": details.risk,
    }
    await ctx.clients["internal"].post("/payments", json=record, idempotency_key=ctx.message.id)
