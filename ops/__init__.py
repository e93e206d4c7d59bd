"""The operator's command ``trackfill`` (status, job, enqueue, dead-letters): it reads
the database and RabbitMQ and publishes manual requests; no service imports it."""
