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
# Healthy while grpc.health.v1 says SERVING on plaintext gRPC port 50051 (not while Redis is down or
# draining); with TLS or another --port, override it (`docker run --health-cmd`). Kubernetes ignores it and
# probes the same (deploy/eks/base/gateway.yaml).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; r = g.HealthStub(grpc.insecure_channel(f'127.0.0.1:{sys.argv[1]}')).Check(h.HealthCheckRequest(), timeout=4); sys.exit(r.status != h.HealthCheckResponse.SERVING)", "50051"]
ENTRYPOINT ["moviola"]
CMD ["serve", "--host", "0.0.0.0", "--help"]
