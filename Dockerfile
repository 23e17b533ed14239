# assetwatch images, one Dockerfile, two targets:
#   docker build -t assetwatch .                                   the worker (default, last stage)
#   docker build --target trainer -t assetwatch-trainer .          train / promote / evaluate
# The worker image installs the core dependencies only: it serves data-only models from a
# remote MLflow registry and carries neither the training stack nor the embedded broker.
# The trainer image adds the `train` extra (scikit-learn, skl2onnx, optuna, pandas, full MLflow).
# Either runs every verb its extras allow: `docker run assetwatch simulate --assets 20 --paced`.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ASSETWATCH_DATA_DIR=/data \
    ASSETWATCH_HTTP_HOST=0.0.0.0

# Non-root user; /data is created and owned here so a fresh named volume inherits it.
RUN useradd --create-home --uid 10001 --user-group assetwatch \
    && mkdir -p /data \
    && chown assetwatch:assetwatch /data

# assetwatch/ links the root folders in (assetwatch.agents, ...); the wheel copies their files.
# Each target installs from this throwaway source folder: the package lands in site-packages
# and the sources are removed, so nothing on the working directory shadows the installed copy.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY assetwatch/ assetwatch/
COPY agents/ agents/
COPY features/ features/
COPY models/ models/
COPY schemas/ schemas/
COPY scoring/ scoring/

# `assetwatch train --promote` and the other verbs that fit, register or backtest models.
FROM base AS trainer
RUN pip install --no-cache-dir ".[train]" \
    && cd / && rm -rf /src
USER assetwatch
WORKDIR /home/assetwatch
VOLUME ["/data"]
ENTRYPOINT ["assetwatch"]
CMD ["train"]

# The worker (and feedback, simulate, topics...): core dependencies only. Last, so the default.
FROM base AS worker
RUN pip install --no-cache-dir . \
    && cd / && rm -rf /src
USER assetwatch
WORKDIR /home/assetwatch
VOLUME ["/data"]
# The worker's /metrics, /health and /live (ASSETWATCH_METRICS_PORT).
EXPOSE 9108

ENTRYPOINT ["assetwatch"]
CMD ["worker"]
