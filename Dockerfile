# The nightly job image (spec section 5: "Fly Job (Docker)"): Python, Java 17 for PySpark,
# pria-ml and every dependency at the exact version and sha256 of requirements.lock. torch
# comes from the lock too, with the CUDA libraries it is built against (the nvidia-* wheels),
# so the base image needs no CUDA of its own; Fly provides the driver. Nothing is resolved
# against the index at build time, so tonight's image is last night's plus the commits since.
# SQL files and the tiktoken ranks ship as package data; no stage downloads anything but the
# base model weights, once, onto the volume (HF_HOME).
FROM ubuntu:24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HF_HOME=/data/hf \
    PRIA_HOME=/data/pria \
    HF_HUB_DISABLE_TELEMETRY=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3 python3-venv openjdk-17-jre-headless tini ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv

WORKDIR /app
# The lock alone first: this layer is rebuilt only when the lock changes.
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock

COPY pyproject.toml README.md ./
COPY pria_ml ./pria_ml
COPY sql ./sql
COPY benchmarks ./benchmarks
RUN pip install --no-deps --no-index --no-build-isolation . \
    && pip check \
    && pria-ml --version \
    && python -c "from pria_ml.data.tokens import encoding; encoding()"

COPY deploy/fly/entrypoint.sh /usr/local/bin/pria-entrypoint
RUN useradd --create-home --uid 10001 pria && mkdir -p /data && chown pria:pria /data
VOLUME ["/data"]

# Root only until the entrypoint has made the Fly volume (mounted root-owned) writable; it then
# drops to uid 10001 (deploy/fly/entrypoint.sh).
# hadolint ignore=DL3002
USER 0
ENTRYPOINT ["tini", "--", "pria-entrypoint", "pria-ml"]
CMD ["--help"]
