"""The ``zoom`` signature scheme (being written)."""
