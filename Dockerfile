# syntax=docker/dockerfile:1
#
# Chat UI image: what a Hugging Face Docker Space builds, and what you self-host.
#
#   docker build -t chatui .                              # CPU (default): bundled SmolLM2, runs offline
#   docker build --build-arg VARIANT=gpu -t chatui:gpu .  # + vLLM in-process (NVIDIA GPU)
#   docker run -p 7860:7860 -v chatui-data:/data chatui
#
# On a Space, a Space *variable* VARIANT=gpu selects the GPU image (Space variables are passed
# to the build as build args).
#
# tests/deploy/test_dockerfile.py replays this file without a Docker engine: it runs every RUN
# that calls pip/python, in order, in a fresh venv per `FROM ${PYTHON_IMAGE}`, with the same ENV
# and ARG values, copies what COPY copies (minus .dockerignore), then starts CMD and probes the
# HEALTHCHECK. Keep environment steps as plain `RUN pip ...` / `RUN python ...` lines; system
# steps (apt-get, useradd) are the only RUNs it skips.

ARG PYTHON_IMAGE=python:3.11-slim
ARG VARIANT=cpu

# ---- builder: a wheelhouse for every dependency; compilers never reach the final image ----
FROM ${PYTHON_IMAGE} AS builder
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
# llama-cpp-python has no wheel on PyPI. Portable CPU flags: the native build (-march=native of
# the build machine) segfaults on other CPUs, and a Space builds on one machine, runs on another.
ENV CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON" \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /build
# Only pyproject.toml: the dependency layers rebuild when dependencies change, not when code does.
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; open('requirements.txt', 'w').write('\n'.join(p['dependencies']) + '\n'); open('requirements-vllm.txt', 'w').write('\n'.join(p['optional-dependencies']['vllm']) + '\n')"
RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --wheel-dir /wheels -r requirements.txt \
    && cp requirements.txt requirements-vllm.txt /wheels/

# ---- deps: Python packages, installed from the wheelhouse (bind-mounted: no wheel layer) ----
FROM ${PYTHON_IMAGE} AS deps
# Spaces run containers as uid 1000.
RUN useradd -m -u 1000 user \
    && mkdir -p /data /home/user/app \
    && chown user:user /data /home/user/app
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN --mount=type=bind,from=builder,source=/wheels,target=/tmp/wheels \
    pip install --no-cache-dir --no-index --find-links=/tmp/wheels -r /tmp/wheels/requirements.txt

FROM deps AS runtime-cpu

# ---- gpu: + vLLM (its PyPI wheel brings CUDA-enabled torch; Triton needs a C compiler) ----
FROM deps AS runtime-gpu
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
RUN --mount=type=bind,from=builder,source=/wheels,target=/tmp/wheels \
    pip install --no-cache-dir -r /tmp/wheels/requirements-vllm.txt

# ---- the app (last stage = what `docker build` and a Space produce) ----
FROM runtime-${VARIANT} AS app
USER user
ENV HOME=/home/user \
    PATH=/home/user/.local/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    HF_HOME=/data/.huggingface \
    CHATUI_DB_PATH=/data/chatui.db \
    CHATUI_HOST=0.0.0.0 \
    CHATUI_PORT=7860
WORKDIR /home/user/app
COPY --chown=user:user app.py pyproject.toml spaces.yaml ./
COPY --chown=user:user backends ./backends
COPY --chown=user:user chatui ./chatui
# Conversations and feedback (SQLite). On a Space, /data persists only with persistent storage;
# set storage.feedback_repo to push feedback to a Hub dataset instead.
VOLUME ["/data"]
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:7860/healthz', timeout=3).status == 200 else 1)"
CMD ["python", "app.py"]
