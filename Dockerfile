# Tyk Inspector as a container: a documented starting point (docs/scale-out.md), not a hardened image.
FROM python:3.11-slim

WORKDIR /opt/tyk-inspector
COPY pyproject.toml README.md main.py ./
COPY app ./app
COPY protogen ./protogen
RUN pip install --no-cache-dir . && useradd --system --no-create-home inspector

USER inspector
# gRPC Dispatcher (the gateway's coprocess_grpc_server) and the dashboard.
EXPOSE 50051 8000
# Beyond loopback the dashboard needs TYK_INSPECTOR_AUTH_TOKEN (or --auth-token-file).
ENV TYK_INSPECTOR_HTTP_HOST=0.0.0.0
ENTRYPOINT ["tyk-inspector"]
CMD ["serve"]
