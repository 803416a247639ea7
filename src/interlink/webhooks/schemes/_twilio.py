"""The ``twilio`` signature scheme (being written)."""
