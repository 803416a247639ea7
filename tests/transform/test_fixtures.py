"""Real payloads through real mapping files: a Stripe charge event and a Shopify order.

The fixtures are what the providers send (Stripe API version 2024-06-20, a
Shopify ``orders/create`` webhook); the mappings are YAML files as a user would
write them. Each test loads a mapping with ``Mapping.load`` and checks the
exact output, value by value.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from interlink.transform import Mapping, TransformError

FIXTURES = Path(__file__).parent / "fixtures"


def payload(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def stripe() -> Mapping:
    return Mapping.load(FIXTURES / "stripe_charge.yaml")


@pytest.fixture(scope="module")
def shopify() -> Mapping:
    return Mapping.load(FIXTURES / "shopify_order.yaml")


STRIPE_PAYMENT = {
    "id": "ch_3PQx7BLkdIwHu7ix0dV5Xq9K",
    "event_id": "evt_3PQx7BLkdIwHu7ix0ZsYhF2r",
    "reference": "order-1042",
    "provider": "stripe",
    "livemode": False,
    "amount_cents": 12999,
    "captured_cents": 12999,
    "currency": "USD",
    "status": "PAID",
    "risk": "LOW",
    "charged_at": datetime(2024, 6, 10, 16, 2, 1, tzinfo=UTC),
    "received_at": datetime(2024, 6, 10, 16, 2, 2, tzinfo=UTC),
    "customer_id": "cus_QHx2f3nR9kYt1p",
    "payer": {
        "name": "Jenny Rosen",
        "email": "jenny.rosen@example.com",
        "phone": "+15035550142",
        "address": {
            "line1": "1234 SW Morrison St",
            "line2": "Apt 5",
            "city": "Portland",
            "postal_code": "97205",
            "country": "US",
        },
    },
    "card": {"brand": "VISA", "last4": "4242", "expires": "08/2027", "wallet": None},
    "metadata": {"orderId": "1042", "customerNote": "Leave at the side door"},
}


def test_stripe_charge_becomes_the_exact_payment(stripe: Mapping) -> None:
    out = stripe.transform(payload("stripe_charge_succeeded.json"))
    assert out == STRIPE_PAYMENT
    assert stripe.name == "stripe_charge"


def test_stripe_datetimes_are_aware_utc_from_epoch_seconds(stripe: Mapping) -> None:
    out = stripe.transform(payload("stripe_charge_succeeded.json"))
    for key in ("charged_at", "received_at"):
        assert out[key].tzinfo is not None
        assert out[key].utcoffset().total_seconds() == 0
    assert out["charged_at"].isoformat() == "2024-06-10T16:02:01+00:00"


def test_stripe_metadata_keys_are_camel_cased_and_only_the_allowed_ones_kept(
    stripe: Mapping,
) -> None:
    event = payload("stripe_charge_succeeded.json")
    assert set(event["data"]["object"]["metadata"]) == {
        "order_id",
        "customerNote",
        "internal_score",
        "utm_source",
    }
    out = stripe.transform(event)
    assert list(out["metadata"]) == ["orderId", "customerNote"]
    # an allowed key that is absent is simply absent; values are converted to str
    event["data"]["object"]["metadata"] = {"order_id": 1043, "utm_source": "ads"}
    assert stripe.transform(event)["metadata"] == {"orderId": "1043"}


@pytest.mark.parametrize(
    ("status", "risk", "expected"),
    [
        ("failed", "elevated", ("FAILED", "MEDIUM")),
        ("pending", "highest", ("PENDING", "HIGH")),
        ("disputed", "not_assessed", ("UNKNOWN", "UNREVIEWED")),  # unmapped -> the default
    ],
)
def test_stripe_value_maps_with_their_defaults(
    stripe: Mapping, status: str, risk: str, expected: tuple[str, str]
) -> None:
    event = payload("stripe_charge_succeeded.json")
    event["data"]["object"]["status"] = status
    event["data"]["object"]["outcome"]["risk_level"] = risk
    out = stripe.transform(event)
    assert (out["status"], out["risk"]) == expected


def test_stripe_optional_fields_may_be_absent_and_required_ones_may_not(stripe: Mapping) -> None:
    event = payload("stripe_charge_succeeded.json")
    details = event["data"]["object"]["billing_details"]
    details["phone"] = None
    del details["address"]["line2"]
    out = stripe.transform(event)
    assert out["payer"]["phone"] is None
    assert out["payer"]["address"]["line2"] is None

    del details["address"]["city"]
    with pytest.raises(TransformError) as caught:
        stripe.transform(event)
    assert caught.value.path == "payer.address.city"
    assert caught.value.reason == "missing"


def test_stripe_a_negative_amount_is_refused_with_its_path(stripe: Mapping) -> None:
    event = payload("stripe_charge_succeeded.json")
    event["data"]["object"]["amount"] = -5
    with pytest.raises(TransformError) as caught:
        stripe.transform(event)
    assert caught.value.path == "amount_cents"
    assert caught.value.value == "-5"


SHOPIFY_ORDER = {
    "id": "5876931231832",
    "gid": "gid://shopify/Order/5876931231832",
    "number": "SHOP-1042",
    "email": "maria.garcia@example.com",
    "placed_at": datetime(2024, 5, 1, 16, 34, 56, tzinfo=UTC),
    "updated_at": datetime(2024, 5, 1, 16, 35, 2, tzinfo=UTC),
    "currency": "USD",
    "total": Decimal("199.00"),
    "subtotal": Decimal("184.00"),
    "tax": Decimal("15.00"),
    "discounts": Decimal("10.00"),
    "discount_code": "SPRING10",
    "payment_status": "PAID",
    "fulfillment": "UNFULFILLED",
    "gift_message": "Happy birthday, Ana!",
    "customer": {
        "id": "7301234567890",
        "name": "Maria Garcia",
        "email": "maria.garcia@example.com",
        "since": datetime(2023, 11, 14, 14, 12, tzinfo=UTC),
    },
    "lines": [
        {
            "line_id": "14567890123401",
            "sku": "TR-09-SLT",
            "title": "Trail Runner",
            "variant": "9 / Slate",
            "quantity": 1,
            "unit_price": Decimal("129.00"),
            "variant_id": "44123456789012",
        },
        {
            "line_id": "14567890123402",
            "sku": "SK-M-MER",
            "title": "Merino Socks",
            "variant": "M",
            "quantity": 2,
            "unit_price": Decimal("18.50"),
            "variant_id": "44123456789013",
        },
        {
            "line_id": "14567890123403",
            "sku": "WB-750",
            "title": "Water Bottle",
            "variant": "Default",
            "quantity": 1,
            "unit_price": Decimal("28.00"),
            "variant_id": "44123456789014",
        },
    ],
    "ship_to": {
        "name": "Maria Garcia",
        "street": "350 Fifth Avenue, Suite 2100",
        "city": "New York",
        "region": "NY",
        "postal_code": "10118",
        "country": "US",
    },
    "shipping": {"amount": "0.00", "currencyCode": "USD"},
    "attributes": [
        {"name": "gift_message", "value": "Happy birthday, Ana!"},
        {"name": "delivery_window", "value": "weekend"},
    ],
    "tags": "vip, spring-sale",
}


def test_shopify_order_becomes_the_exact_order(shopify: Mapping) -> None:
    out = shopify.transform(payload("shopify_order.json"))
    assert out == SHOPIFY_ORDER
    assert shopify.name == "shopify_order"


def test_shopify_iso_datetimes_with_an_offset_come_out_in_utc(shopify: Mapping) -> None:
    out = shopify.transform(payload("shopify_order.json"))
    # "2024-05-01T12:34:56-04:00" is 16:34:56 UTC
    assert out["placed_at"].isoformat() == "2024-05-01T16:34:56+00:00"
    assert out["placed_at"].utcoffset().total_seconds() == 0
    # "2023-11-14T09:12:00-05:00" (standard time) is 14:12 UTC
    assert out["customer"]["since"].isoformat() == "2023-11-14T14:12:00+00:00"


def test_shopify_money_is_decimal_never_float(shopify: Mapping) -> None:
    out = shopify.transform(payload("shopify_order.json"))
    amounts = [out["total"], out["subtotal"], out["tax"], out["discounts"]]
    amounts += [line["unit_price"] for line in out["lines"]]
    assert all(type(amount) is Decimal for amount in amounts)
    assert str(out["total"]) == "199.00"
    lines_total = sum(line["quantity"] * line["unit_price"] for line in out["lines"])
    assert lines_total - out["discounts"] + out["tax"] == out["total"]


def test_shopify_line_items_are_mapped_one_by_one_in_order(shopify: Mapping) -> None:
    order = payload("shopify_order.json")
    order["line_items"].append(copy.deepcopy(order["line_items"][0]) | {"sku": "EXTRA-1"})
    out = shopify.transform(order)
    assert [line["sku"] for line in out["lines"]] == ["TR-09-SLT", "SK-M-MER", "WB-750", "EXTRA-1"]


def test_shopify_a_bad_line_item_fails_with_its_index_in_the_path(shopify: Mapping) -> None:
    order = payload("shopify_order.json")
    order["line_items"][1]["quantity"] = "two"
    with pytest.raises(TransformError) as caught:
        shopify.transform(order)
    assert caught.value.path == "lines[1].quantity"
    assert caught.value.value == "'two'"
    assert str(caught.value).startswith("lines[1].quantity: ")


@pytest.mark.parametrize(
    ("financial", "fulfillment", "expected"),
    [
        ("refunded", "fulfilled", ("REFUNDED", "FULFILLED")),
        ("partially_paid", "partial", ("OTHER", "PARTIAL")),  # unmapped -> the map's default
        ("pending", None, ("PENDING", "UNFULFILLED")),  # null -> the field's default
    ],
)
def test_shopify_statuses_map_with_defaults(
    shopify: Mapping, financial: str, fulfillment: str | None, expected: tuple[str, str]
) -> None:
    order = payload("shopify_order.json")
    order["financial_status"] = financial
    order["fulfillment_status"] = fulfillment
    out = shopify.transform(order)
    assert (out["payment_status"], out["fulfillment"]) == expected


def test_shopify_optional_fields_absent(shopify: Mapping) -> None:
    order = payload("shopify_order.json")
    order["discount_codes"] = []
    order["note_attributes"] = []
    out = shopify.transform(order)
    assert out["discount_code"] is None
    assert out["gift_message"] is None
    assert out["attributes"] == []


def test_a_batch_of_fixtures_reports_the_bad_ones_and_keeps_the_rest(shopify: Mapping) -> None:
    good = payload("shopify_order.json")
    bad_date = copy.deepcopy(good) | {"created_at": "yesterday"}
    bad_total = copy.deepcopy(good) | {"total_price": "19O.00"}
    result = shopify.transform_batch([good, bad_date, good, bad_total])
    assert [index for index, _ in result.ok] == [0, 2]
    assert [out for _, out in result.ok] == [SHOPIFY_ORDER, SHOPIFY_ORDER]
    assert [(e.index, e.path) for e in result.errors] == [(1, "placed_at"), (3, "total")]
    assert result.errors[1].value == "'19O.00'"
