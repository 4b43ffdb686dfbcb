# simtrain: one image for the API, the worker and the migrations (docker-compose.yml picks the command).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SIMTRAIN_HOME=/data

WORKDIR /app

# torch first: the largest layer, cached independently of the code
RUN pip install torch==2.14.1 torchvision==0.29.1

COPY pyproject.toml README.md alembic.ini ./
COPY core ./core
COPY api ./api
COPY worker ./worker
COPY migrations ./migrations
COPY cli ./cli
RUN pip install '.[tracking]' \
    && useradd --create-home --uid 1000 simtrain \
    && mkdir -p /data/artifacts \
    && chown -R simtrain:simtrain /data

USER simtrain
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=5 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)" || exit 1
CMD ["simtrain", "serve", "--host", "0.0.0.0", "--port", "8000"]
