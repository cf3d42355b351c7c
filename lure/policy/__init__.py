"""Policies served to (simulated) users and the feedback they get: the world as an environment (``environment``)."""
