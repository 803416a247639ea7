"""The ``discord`` signature scheme (being written)."""
