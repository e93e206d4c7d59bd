"""What the operator's commands fail with, and the exit status each one means
(docs/operations.md)."""

from __future__ import annotations


class Unknown(Exception):
    """The batch, purchase or message named does not exist (exit 1)."""

    exit_status = 1


class Unreachable(Exception):
    """The database or RabbitMQ cannot be used (exit 2)."""

    exit_status = 2
