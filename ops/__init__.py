"""Operator commands (``trackfill status``, ``trackfill dead-letters``): they read the
database and RabbitMQ; no service imports them."""
