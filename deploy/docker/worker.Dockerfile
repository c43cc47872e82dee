# A GPU worker: CUDA torch and diffusers. Weights are never baked in: they come from a volume
# (--model-path /models/...), or the hub cache on a volume (HF_HOME), or S3 synced by an init step.
#   docker build -f deploy/docker/worker.Dockerfile -t moviola-worker:0.1.0 .
# CUDA 12.8 runtime; torch's cu128 wheel brings its own CUDA libraries, the base image the driver glue.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/models/hub HF_HUB_OFFLINE=1 VIRTUAL_ENV=/opt/moviola PATH=/opt/moviola/bin:$PATH
RUN apt-get update && apt-get install -y --no-install-recommends python3.12 python3.12-venv \
    && rm -rf /var/lib/apt/lists/* && python3.12 -m venv /opt/moviola
WORKDIR /src
COPY clients/python clients/python
COPY server server
COPY pyproject.toml README.md ./
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}" \
    && pip install ./clients/python ".[worker]" && rm -rf /src

RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin moviola && mkdir -p /models \
    && chown 10001 /models
USER 10001
WORKDIR /home/moviola
EXPOSE 9090
# Healthy while moviola_ready is 1 on the metrics port (run with --metrics-port 9090): the model loaded,
# not draining. The worker manifests' readiness probe runs the same script (scripts/deploy_workers.py).
HEALTHCHECK --interval=30s --timeout=5s --start-period=15m --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request as u; b = u.urlopen(f'http://127.0.0.1:{sys.argv[1]}/metrics?name[]=moviola_ready', timeout=4).read(); sys.exit(b'moviola_ready 1.0' not in b.splitlines())", "9090"]
ENTRYPOINT ["moviola"]
CMD ["worker", "--help"]
