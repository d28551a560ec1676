# syntax=docker/dockerfile:1
# One image for both services, the processing worker, the sandbox processor, the dashboard and the
# migration job; each runs by its own command (docker-compose.yml, deploy/kubernetes). For a
# release, pin the base by digest as well (python:3.11-slim-bookworm@sha256:<digest>): one line to
# change, every stage starts from it.
FROM python:3.11-slim-bookworm AS base
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

# stubs (and the descriptors reflection serves) are generated from the contracts, in a stage of
# their own: the code generator never reaches the image
FROM base AS stubs
WORKDIR /src
RUN pip install --no-cache-dir grpcio-tools==1.85.1
COPY protos ./protos
COPY scripts/gen_protos.py ./scripts/
RUN python scripts/gen_protos.py

FROM base AS build
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# the dependencies first, exactly as locked (versions and hashes): this layer is rebuilt only
# when requirements.lock changes, not on every change of the code (`make lock` regenerates it)
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY payments_common ./payments_common
COPY auth_service ./auth_service
COPY transaction_service ./transaction_service
COPY sandbox_processor ./sandbox_processor
COPY payments_client ./payments_client
COPY dashboard ./dashboard
COPY --from=stubs /src/payments ./payments
# our code only; `pip check` fails the build if the lock does not satisfy pyproject.toml
RUN pip install --no-cache-dir --no-deps . && pip check

FROM base AS runtime
# /var/lib/sandbox: where the sandbox processor keeps its SQLite file, owned by the user so that a
# volume mounted there (Compose's named volume starts as a copy of it) is writable
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin app \
  && install -d -o 10001 -g 10001 -m 0700 /var/lib/sandbox
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY alembic.ini ./
COPY migrations ./migrations
# one glibc malloc arena: the password-hashing threads then reuse one another's freed 19 MiB
# argon2 buffer instead of keeping one per arena (auth peak RSS 143 MB in every trial instead of
# 143 or 162 MB with two arenas; same Login rate; bench/README.md)
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MALLOC_ARENA_MAX=1
USER 10001:10001
EXPOSE 50051 50052 50060 50070 9101 9102 9103 8080
# the auth service by default; run the transaction service with HEALTHCHECK_ADDRESS=localhost:50052
# (Compose and Kubernetes probe each service themselves)
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-m", "payments_common.healthcheck"]
CMD ["python", "-m", "auth_service"]
