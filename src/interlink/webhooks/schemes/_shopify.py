"""The ``shopify`` signature scheme (being written)."""
