"""The ``convoy`` signature scheme (being written)."""
