"""The end-to-end demo (``./run demo``): the four services, the simulator and a batch of
realistic purchases on the local PostgreSQL and RabbitMQ, with time compressed."""
