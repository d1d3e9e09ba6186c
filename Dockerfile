# syntax=docker/dockerfile:1
#
# Two images from one file:
#   docker build --target api    -t lossdoctor-api .     # FastAPI, core deps only, no TensorFlow
#   docker build --target worker -t lossdoctor-worker .  # Celery probe worker, TF 2.21 + CUDA
# (docker-compose.yml builds both.) Each final stage copies a ready virtual environment from
# its build stage: no compiler, pip cache or source tree in the final image, and it runs as an
# unprivileged user.
#
# Worker base: python:3.11-slim + the `tensorflow[and-cuda]==2.21.*` wheels (the `gpu` extra)
# rather than tensorflow/tensorflow:2.21.0-gpu, because
#   - the pip extra pulls the CUDA/cuDNN wheels (nvidia-*) that this TF release was built
#     against, and TF finds them in site-packages: the host only needs the NVIDIA driver and
#     the container toolkit;
#   - API and worker then share one base, one Python (3.11, as pyproject and CI) and one
#     resolver's choice of keras/numpy/celery, instead of the official image's system Python
#     and preinstalled packages next to ours;
#   - the official image runs as root and carries tools we do not need; here the user and
#     the contents are ours to pin.
# The price is a large layer (the CUDA wheels, several GB) that changes only with the pins.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------- shared base
FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# ---------------------------------------------------------------- build: API venv
FROM base AS api-build
RUN python -m venv /opt/venv
WORKDIR /src
# Dependencies first (a layer that changes only with pyproject.toml), then the package.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt
COPY README.md ./
COPY service ./service
COPY workers ./workers
COPY lossdoctor_client ./lossdoctor_client
RUN pip install --no-deps . && lossdoctor --help > /dev/null && python -c "import service.main"

# ---------------------------------------------------------------- final: api
FROM base AS api
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/lossdoctor --create-home lossdoctor
COPY --from=api-build /opt/venv /opt/venv
WORKDIR /var/lib/lossdoctor
ENV LOSSDOCTOR_DATA_DIR=/var/lib/lossdoctor \
    LOSSDOCTOR_PORT=8000
USER lossdoctor
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('LOSSDOCTOR_PORT', '8000'), timeout=4)"
# The README's command, on all interfaces of the container. `lossdoctor serve` refuses a
# non-loopback address without API keys: give it LOSSDOCTOR_API_KEYS or a keys file in
# /var/lib/lossdoctor (`lossdoctor keys create --tenant NAME`), see docker-compose.yml.
CMD ["lossdoctor", "serve", "--host", "0.0.0.0"]

# ---------------------------------------------------------------- build: worker venv
FROM base AS worker-build
# `gpu`: tensorflow[and-cuda]; build with --build-arg WORKER_EXTRA=worker for a CPU-only image
# (tensorflow-cpu, no CUDA wheels). The two extras both provide `tensorflow`: pick one.
ARG WORKER_EXTRA=gpu
RUN python -m venv /opt/venv
WORKDIR /src
# TensorFlow and the CUDA wheels first, in a layer that a source change does not invalidate.
COPY pyproject.toml ./
RUN python -c "import sys, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies'][sys.argv[1]]))" "${WORKER_EXTRA}" > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt
COPY README.md ./
COPY service ./service
COPY workers ./workers
COPY lossdoctor_client ./lossdoctor_client
RUN pip install --no-deps . && lossdoctor --help > /dev/null && python -c "import workers.celery_app"

# ---------------------------------------------------------------- final: worker
FROM base AS worker
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/lossdoctor --create-home lossdoctor
COPY --from=worker-build /opt/venv /opt/venv
WORKDIR /var/lib/lossdoctor
ENV LOSSDOCTOR_DATA_DIR=/var/lib/lossdoctor \
    TF_CPP_MIN_LOG_LEVEL=1
USER lossdoctor
# Metrics of the Celery child (LOSSDOCTOR_WORKER_METRICS_PORT), when set.
EXPOSE 9100
# The parent process answers control messages even while its child trains.
HEALTHCHECK --interval=60s --timeout=20s --start-period=60s --retries=3 \
  CMD celery -A workers.celery_app inspect ping --timeout 10 -d "celery@$HOSTNAME" > /dev/null || exit 1
CMD ["lossdoctor", "worker"]
