"""The ``stripe`` signature scheme (being written)."""
