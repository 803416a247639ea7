"""The ``square`` signature scheme (being written)."""
