"""The ``paddle`` signature scheme (being written)."""
