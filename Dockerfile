# mcpmux image: python plus node/npx, uv/uvx and git, so stdio servers started with
# `npx ...` or `uvx ...` work inside the container, as with the original mcp-proxy image.
FROM python:3.12-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm git ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && pip install --no-cache-dir uv

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip install --no-cache-dir .

EXPOSE 9090
VOLUME ["/config"]
ENTRYPOINT ["mcpmux"]
CMD ["--config", "/config/config.json"]
