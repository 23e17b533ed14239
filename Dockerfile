# assetwatch worker image: `docker build -t assetwatch .`
# The same image runs every verb: `docker run assetwatch simulate --assets 20 --paced`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ASSETWATCH_DATA_DIR=/data \
    ASSETWATCH_HTTP_HOST=0.0.0.0

# assetwatch/ links the root folders in (assetwatch.agents, ...); the wheel copies their files.
# Install from a throwaway source folder: the package lands in site-packages and the
# sources are removed, so nothing on the working directory shadows the installed copy.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY assetwatch/ assetwatch/
COPY agents/ agents/
COPY features/ features/
COPY models/ models/
COPY schemas/ schemas/
COPY scoring/ scoring/
RUN pip install --no-cache-dir . \
    && cd / && rm -rf /src

# Non-root user; /data is created and owned here so a fresh named volume inherits it.
RUN useradd --create-home --uid 10001 --user-group assetwatch \
    && mkdir -p /data \
    && chown assetwatch:assetwatch /data
USER assetwatch
WORKDIR /home/assetwatch
VOLUME ["/data"]
# The worker's /metrics, /health and /live (ASSETWATCH_METRICS_PORT).
EXPOSE 9108

ENTRYPOINT ["assetwatch"]
CMD ["worker"]
