"""The ``github`` signature scheme (being written)."""
