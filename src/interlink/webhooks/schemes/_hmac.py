"""The ``hmac`` signature scheme (being written)."""
