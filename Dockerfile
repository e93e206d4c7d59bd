# One image for every trackfill process; docker-compose.yml picks the command.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
# The dependencies in a layer of their own, at the versions CI tests (constraints.txt):
# a change of code does not reinstall them.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt
COPY README.md alembic.ini ./
COPY shared ./shared
COPY selector ./selector
COPY publisher ./publisher
COPY webhook_gateway ./webhook_gateway
COPY ingestor ./ingestor
COPY webscraper_sim ./webscraper_sim
COPY ops ./ops
COPY demo ./demo
COPY migrations ./migrations
RUN pip install --no-deps . && useradd --system trackfill
USER trackfill
