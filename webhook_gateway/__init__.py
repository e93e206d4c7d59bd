"""webhook_gateway: receives Web Scraper's webhooks and queues job.completed.

Not built yet (issue 5).
"""
