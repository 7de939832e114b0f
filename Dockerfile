# The nightly job image (spec section 5: "Fly Job (Docker)"): CUDA runtime, Python, Java 17 for
# PySpark, pria-ml with the CUDA build of torch. Everything pria-ml needs at run time is inside:
# SQL files and the tiktoken ranks ship as package data, so no stage downloads anything but the
# base model weights (cached on the HF_HOME volume).
FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04

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

# torch first, from the CUDA index: pria-ml's own "torch>=2.4" is then already satisfied and
# pip never swaps it for another build.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126

WORKDIR /app
COPY pyproject.toml README.md ./
COPY pria_ml ./pria_ml
COPY sql ./sql
COPY benchmarks ./benchmarks
RUN pip install . \
    && pria-ml --version \
    && python -c "from pria_ml.data.tokens import encoding; encoding()"

RUN useradd --create-home --uid 10001 pria && mkdir -p /data && chown pria /data
USER 10001
VOLUME ["/data"]

ENTRYPOINT ["tini", "--", "pria-ml"]
CMD ["--help"]
