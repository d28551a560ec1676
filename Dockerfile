# syntax=docker/dockerfile:1
# One image for both services; each runs by its own command (see docker-compose.yml).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md ./
COPY protos ./protos
COPY scripts/gen_protos.py ./scripts/
COPY payments_common ./payments_common
COPY auth_service ./auth_service
COPY transaction_service ./transaction_service
COPY payments_client ./payments_client
# stubs are generated at build time from the contracts, then the code generator is removed
RUN pip install grpcio-tools==1.85.1 \
 && rm -rf payments && python scripts/gen_protos.py \
 && pip install . \
 && pip uninstall -y grpcio-tools

FROM python:3.11-slim AS runtime
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY alembic.ini ./
COPY migrations ./migrations
# one glibc malloc arena: the password-hashing threads then reuse one another's freed 19 MiB
# argon2 buffer instead of keeping one per arena (auth peak RSS 143 MB in every trial instead of
# 143 or 162 MB with two arenas; same Login rate; bench/README.md)
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MALLOC_ARENA_MAX=1
USER 10001:10001
EXPOSE 50051 50052 9101 9102
CMD ["python", "-m", "auth_service"]
