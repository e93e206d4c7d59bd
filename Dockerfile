# One image for every trackfill process; docker-compose.yml picks the command.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY shared ./shared
COPY selector ./selector
COPY publisher ./publisher
COPY webhook_gateway ./webhook_gateway
COPY ingestor ./ingestor
COPY webscraper_sim ./webscraper_sim
COPY ops ./ops
COPY migrations ./migrations
RUN pip install --no-cache-dir . && useradd --system trackfill
USER trackfill
