"""Entities: the customer holding the card and the merchant receiving the payment."""

from feast import Entity, Project, ValueType

kaizen_project = Project(
    name="kaizen",
    description="Card-transaction fraud detection features of the Kaizen platform",
)

customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.STRING,
    description="A card holder; windowed spending aggregates are keyed by it.",
)

merchant = Entity(
    name="merchant",
    join_keys=["merchant_id"],
    value_type=ValueType.STRING,
    description="A merchant; its recent volume and labelled fraud rate are keyed by it.",
)
