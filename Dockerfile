# Sandbar's dashboard as a container image (docs/deploy.md). It talks to a Daytona
# elsewhere (Daytona Cloud, a self-hosted Daytona, or the embedded engine run on a host
# by deploy/systemd/sandbar-engine.service): the engine itself needs root, user
# namespaces, cgroups and loop devices, which a container should not be given.
FROM python:3.12-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SANDBAR_DATA_DIR=/var/lib/sandbar \
    SANDBAR_LOG_FORMAT=json

WORKDIR /app
# Dependencies first (the package itself is removed again: the code runs from /app),
# so a change to the code alone reuses this layer.
COPY pyproject.toml README.md ./
COPY dashboard/__init__.py dashboard/__init__.py
RUN pip install --no-cache-dir ".[postgres,redis]" && pip uninstall -y sandbar
COPY . .
# Static files go to SANDBAR_DATA_DIR/static, a volume: `collectstatic` runs with the
# migrations at each deploy (the compose file's `migrate` service), not in the image.
RUN useradd --system --home-dir /var/lib/sandbar --shell /usr/sbin/nologin sandbar \
    && install -d -o sandbar -g sandbar -m 0700 /var/lib/sandbar

USER sandbar
EXPOSE 8000
VOLUME /var/lib/sandbar
# Liveness only: a worker whose database is away is alive (/readyz says it is not ready).
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request as u; u.urlopen('http://localhost:8000/healthz', timeout=2)"
# WEB_CONCURRENCY sets uvicorn's worker processes. SIGTERM closes WebSockets with 1012,
# which the pages take as "reconnect".
STOPSIGNAL SIGTERM
CMD ["uvicorn", "dashboard.asgi:application", "--host", "0.0.0.0", "--port", "8000", \
     "--ws", "websockets-sansio", "--lifespan", "on", "--no-server-header", \
     "--proxy-headers", "--forwarded-allow-ips", "*", "--timeout-graceful-shutdown", "5"]
