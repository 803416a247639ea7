"""The ``twitch`` signature scheme (being written)."""
