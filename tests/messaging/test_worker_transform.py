"""A transform on a queue, on every backend: the handler gets the mapped record; a record the
transform refuses goes to the DLQ at once, its error naming the field and the reason, and the
transformer counts it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pydantic
import pytest

from interlink.core.errors import ConfigError
from interlink.messaging import MessageContext, Worker
from interlink.transform import Mapping
from tests.messaging import worker_helpers
from tests.messaging.harness import Harness

workers = worker_helpers.workers  # the fixture
Workers = Callable[..., Worker]

SPEC = {
    "name": "charges",
    "fields": {
        "id": {"source": "data.id", "template": "ch_{value}"},
        "amount": {"source": "data.amount", "convert": "int"},
        "status": {"source": "data.status", "map": {"values": {"succeeded": "PAID"}}},
    },
}


class Payment(pydantic.BaseModel):
    id: str
    amount: int = pydantic.Field(ge=0)
    status: str


async def test_a_transformed_queue_hands_over_mapped_records_and_dead_letters_refused_ones(
    harness: Harness, workers: Workers
) -> None:
    q = harness.queue("tx")
    mapping = Mapping.from_dict(SPEC)
    worker = workers()
    seen: list[Payment] = []

    async def handle(payment: Payment, ctx: MessageContext) -> None:
        seen.append(payment)

    worker.add_handler(q, handle, name="pay", transform=mapping, model=Payment)
    await worker.start()
    good = {"data": {"id": "1", "amount": "250", "status": "succeeded"}}
    await harness.broker.publish(q, good)
    await harness.broker.publish(q, {"data": {"id": "2", "amount": "2.5", "status": "succeeded"}})
    await harness.broker.publish(q, {"data": {"id": "3", "amount": 1, "status": "refunded"}})
    await harness.broker.publish(q, {"data": {"id": "4", "amount": -5, "status": "succeeded"}})
    await harness.run_until(
        lambda: (
            worker.stats()[(q, "pay")].dead_lettered == 3 and worker.stats()[(q, "pay")].acked == 1
        ),
        within=5,
    )
    assert seen == [Payment(id="ch_1", amount=250, status="PAID")]
    assert worker.stats()[(q, "pay")].retried == 0  # permanent: no retry
    letters = await harness.broker.dead_letters.list(queue=q)
    failures = sorted(
        (d.failure.reason, d.failure.error_type, d.failure.error_message) for d in letters
    )
    assert failures == [
        (
            "permanent",
            "interlink.core.errors.TransformError",
            "amount: expected a whole number (got '2.5')",
        ),
        (
            "permanent",
            "interlink.core.errors.TransformError",
            "status: unmapped value (got 'refunded')",
        ),
        (
            "permanent",
            "interlink.messaging.InvalidPayloadError",
            next(d.failure.error_message for d in letters if "validate" in d.failure.error_message),
        ),
    ]
    assert "amount: Input should be greater than or equal to 0" in failures[2][2]
    assert mapping.stats.failed == 2
    assert mapping.stats.failures_by_field == {"amount": 1, "status": 1}
    assert mapping.stats.transformed == 2  # the one the model refused was transformed


async def test_a_transform_must_have_a_transform_method(workers: Workers) -> None:
    async def handle(body: Any, ctx: MessageContext) -> None:
        raise AssertionError("never called")

    with pytest.raises(ConfigError, match="transform"):
        workers().add_handler("q", handle, transform=lambda body: body)
