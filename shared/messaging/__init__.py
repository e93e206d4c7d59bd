"""RabbitMQ: the topology, the message envelope, confirmed publishing and the consumer loop."""
