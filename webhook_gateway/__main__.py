"""``python -m webhook_gateway``: the webhook receiver on waitress (GATEWAY_BIND,
GATEWAY_THREADS), its Prometheus metrics on METRICS_PORT (not on the public webhook
port). SIGTERM lets requests in progress finish, then exits 0."""

from __future__ import annotations

import logging
import signal
import sys

from waitress.server import create_server

from shared import metrics
from shared.lifecycle import service_settings
from shared.messaging.publishing import connect
from shared.settings import Settings
from webhook_gateway.app import create_app
from webhook_gateway.broker import GroupPublisher

log = logging.getLogger("trackfill.gateway")


def build(settings: Settings):
    """The WSGI server with its app and broker connections (tests build it the same way)."""
    broker = GroupPublisher(
        lambda: connect(settings.amqp_url, settings.amqp_heartbeat_s, connect_timeout_s=2)
    )
    app = create_app(settings, broker)
    host, port = settings.gateway_host_port
    server = create_server(app, host=host, port=port, threads=settings.gateway_threads)
    return server, broker


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt  # waitress's loop ends on it and lets its threads finish


def main() -> int:
    settings = service_settings("webhook_gateway", require=("WEBHOOK_TOKEN",))
    server, broker = build(settings)
    metrics.serve(settings.metrics_port)
    signal.signal(signal.SIGTERM, _interrupt)
    log.info(
        "webhook gateway listening on %s (%d threads)",
        settings.gateway_bind,
        settings.gateway_threads,
    )
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        broker.close()
    log.info("webhook gateway stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
