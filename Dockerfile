# syntax=docker/dockerfile:1
# The one image every pipeline step runs: the taxifare package and its dependencies in /opt/venv.
#
#   make image IMAGE=URI      here: podman, on a local Debian bookworm base (scripts/build_image.sh)
#   docker build -t URI .     anywhere a registry is reachable: on python:3.11-slim
#
# `python -m trainer.task` is the entrypoint, so a Vertex AI custom job needs only args;
# KFP components set their own command (`python3 -m kfp.dsl.executor_main ...`).
ARG BASE_IMAGE=python:3.11-slim

# The dependency list alone, so the slow layer below is rebuilt only when it changes (not on
# edits to pyproject.toml's tool settings, the README or the code).
FROM ${BASE_IMAGE} AS requirements
WORKDIR /src
COPY pyproject.toml ./
RUN python3 -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
    > requirements.txt

FROM ${BASE_IMAGE} AS deps
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PATH=/opt/venv/bin:$PATH
RUN python3 -m venv /opt/venv
WORKDIR /src

# A CA bundle for pip, where TLS is intercepted, comes in as a build secret and never reaches
# a layer. TensorFlow's C++ headers (~290 MB) are only for building custom ops: dropped.
COPY --from=requirements /src/requirements.txt ./
RUN --mount=type=secret,id=pip_ca \
    --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
    && pip install -r requirements.txt \
    && rm -rf /opt/venv/lib/python3*/site-packages/tensorflow/include

# The project itself as a wheel: a code change rebuilds only this and the last small layer.
FROM deps AS wheel
COPY . .
RUN --mount=type=secret,id=pip_ca \
    --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
    && pip wheel --no-deps --wheel-dir /dist .

FROM ${BASE_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=1
RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin taxifare
COPY --from=deps /opt/venv /opt/venv
# COPY, not RUN --mount=type=bind,from=wheel: podman's build cache ignores a bind mount's content.
COPY --from=wheel /dist/ /tmp/dist/
RUN pip install --no-cache-dir --no-deps /tmp/dist/*.whl && rm -rf /tmp/dist
USER 10001:10001
WORKDIR /home/taxifare
ENTRYPOINT ["python", "-m", "trainer.task"]
CMD ["--help"]
