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
# The base image's unprivileged user (uid 1000).
USER 1000
EXPOSE 8000 8001 8002
ENTRYPOINT ["tritonserver"]
CMD ["--model-repository=/models/repository"]
