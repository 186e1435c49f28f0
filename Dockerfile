# mcpmux image: python plus node/npx, uv/uvx and git, so stdio servers started with
# `npx ...` or `uvx ...` work inside the container, as with the original mcp-proxy image.
# Base and tools are pinned (bump them together, on purpose); the process runs as a non-root user.
ARG PYTHON_IMAGE=python:3.12.8-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG PIP_VERSION=24.3.1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip install --no-cache-dir "pip==${PIP_VERSION}" \
 && pip wheel --no-cache-dir --wheel-dir /wheels ".[cluster]"

FROM ${PYTHON_IMAGE}
ARG UV_VERSION=0.5.11
ARG PIP_VERSION=24.3.1
# Debian bookworm's own packages (their versions follow the pinned base image's release)
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm git ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && pip install --no-cache-dir "pip==${PIP_VERSION}" "uv==${UV_VERSION}" \
 && useradd --create-home --home-dir /home/mcpmux --uid 10001 --user-group --shell /usr/sbin/nologin mcpmux \
 && mkdir -p /config \
 && chown mcpmux:mcpmux /config
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels "mcpmux[cluster]" && rm -rf /wheels

USER 10001:10001
ENV HOME=/home/mcpmux \
    PYTHONUNBUFFERED=1 \
    MCPMUX_HEALTH_URL=http://127.0.0.1:9090/_healthz
WORKDIR /home/mcpmux
EXPOSE 9090
VOLUME ["/config"]
# The probe needs no extra tool: the image's own Python. Set MCPMUX_HEALTH_URL if addr is not :9090.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['MCPMUX_HEALTH_URL'], timeout=4)"]
ENTRYPOINT ["mcpmux"]
CMD ["--config", "/config/config.json"]
