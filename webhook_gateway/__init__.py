"""webhook_gateway: receives Web Scraper's webhooks and answers 2xx only once a
``job.completed`` is confirmed by RabbitMQ; no database work. ``python -m webhook_gateway``.
"""
