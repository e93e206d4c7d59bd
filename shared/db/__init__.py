"""Database access: the models (schema as Alembic migrates it) and session factories."""
