# The service image: docker compose builds it (see docker-compose.yml).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY server ./server
COPY imagerepo ./imagerepo
COPY sql ./sql
# With the tracing extra, so that TRACING=on works in the image (off by default).
RUN pip install '.[tracing]' && useradd --create-home --uid 10001 imagerepo
USER imagerepo

ENV HOST=0.0.0.0 PORT=8080 DATA_DIR=/home/imagerepo/data
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health')"
CMD ["python", "-m", "server", "serve"]
