# The gateway: gRPC and the REST face, Redis, Triton and S3 clients. No torch, no diffusers
# (`pip install .` without the [worker] extra; with [search], LanceDB for --search-index); about 750 MB.
#   docker build -f deploy/docker/gateway.Dockerfile -t moviola-gateway:0.1.0 .
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY clients/python clients/python
COPY server server
COPY pyproject.toml README.md ./
RUN pip install ./clients/python ".[search]" && rm -rf /src

RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin moviola
USER 10001
WORKDIR /home/moviola
EXPOSE 50051 8080 9090
ENTRYPOINT ["moviola"]
CMD ["serve", "--host", "0.0.0.0", "--help"]
