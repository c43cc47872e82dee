# Triton with Moviola's embedding model repository (triton/): SigLIP 2 and DINOv2 on the Python
# backend, whose model code is the moviola package's (moviola.embed.triton_model). Weights come
# from a volume (HF_HOME, or each model's `weights` parameter as a local folder), never baked in.
#   docker build -f deploy/docker/triton.Dockerfile -t moviola-triton:0.1.0 .
FROM nvcr.io/nvidia/tritonserver:25.01-py3

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HOME=/models/hub HF_HUB_OFFLINE=1
WORKDIR /src
COPY clients/python clients/python
COPY server server
COPY pyproject.toml README.md ./
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}" \
    && pip install ./clients/python ".[worker]" && rm -rf /src
COPY triton /models/repository
# An unprivileged user whose UID is clear of the host's (the base image's own is 1000).
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin moviola
USER 10001
EXPOSE 8000 8001 8002
# Healthy once both models are loaded (KServe v2 readiness on the HTTP port); Kubernetes probes the same.
HEALTHCHECK --interval=15s --timeout=5s --start-period=5m --retries=3 \
    CMD ["python3", "-c", "import sys, urllib.request as u; u.urlopen(f'http://127.0.0.1:{sys.argv[1]}/v2/health/ready', timeout=4)", "8000"]
ENTRYPOINT ["tritonserver"]
CMD ["--model-repository=/models/repository"]
