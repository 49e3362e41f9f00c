# syntax=docker/dockerfile:1
# The one image every pipeline step runs, and that serves on Vertex AI: the taxifare package
# and its pinned dependencies (requirements/image.lock) in /opt/venv, run as a non-root user.
#
#   make image [IMAGE=URI] [GPU=1]   here: podman, on a local Debian bookworm base (scripts/build_image.sh)
#   docker build [--build-arg ACCELERATOR=gpu] -t URI .   anywhere a registry is reachable: on python:3.11-slim
#
# No ENTRYPOINT: every consumer gives the whole command (KFP and Vertex AI custom jobs the
# component's, Vertex AI serving the container spec's `taxifare serve`, kfp's DockerRunner and
# `docker run IMAGE python -m trainer.task ...` likewise). Kubernetes' `command` replaces an
# ENTRYPOINT but Docker's does not, so an ENTRYPOINT would swallow commands under Docker.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS deps
# cpu: tensorflow-cpu from the lock. gpu: TensorFlow's CUDA build instead (needs an NVIDIA GPU
# machine: `taxifare submit --accelerator-type ...` refuses a cpu image).
ARG ACCELERATOR=cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PATH=/opt/venv/bin:$PATH
RUN python3 -m venv /opt/venv
WORKDIR /src

# A CA bundle for pip, where TLS is intercepted, comes in as a build secret and never reaches
# a layer. TensorFlow's C++ headers (~290 MB) are only for building custom ops: dropped.
COPY requirements/image.lock ./
RUN --mount=type=secret,id=pip_ca \
    --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
    && case "$ACCELERATOR" in \
         cpu) pip install --no-deps -r image.lock ;; \
         gpu) tf=$(sed -n 's/^tensorflow[_-]cpu==//p' image.lock) \
              && grep -v '^tensorflow[_-]cpu==' image.lock > gpu.lock \
              && pip install --no-deps -r gpu.lock \
              && pip install -c gpu.lock "tensorflow[and-cuda]==$tf" ;; \
         *) echo "ACCELERATOR must be cpu or gpu, not $ACCELERATOR" >&2; exit 2 ;; \
       esac \
    && pip check \
    && rm -rf /opt/venv/lib/python3*/site-packages/tensorflow/include

# The project itself as a wheel: a code change rebuilds only this and the last small layer.
FROM deps AS wheel
COPY . .
RUN --mount=type=secret,id=pip_ca \
    --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
    && pip wheel --no-deps --wheel-dir /dist .

FROM ${BASE_IMAGE}
ARG ACCELERATOR=cpu
# `taxifare submit` reads it to tell a GPU image from a CPU one.
LABEL io.taxifare.accelerator="${ACCELERATOR}"
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
# The wheel asks for tensorflow-cpu, which the gpu image replaces by TensorFlow's CUDA build.
RUN pip install --no-cache-dir --no-deps /tmp/dist/*.whl && rm -rf /tmp/dist \
    && if [ "$ACCELERATOR" = cpu ]; then pip check; fi
USER 10001:10001
WORKDIR /home/taxifare
CMD ["taxifare", "--help"]
