"""The ``slack`` signature scheme (being written)."""
