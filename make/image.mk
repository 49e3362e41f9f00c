# The pipeline's container image. Included by the Makefile (`include make/image.mk`).
#   make image                       build pipeline/images.py's DEFAULT_IMAGE with podman (a local Debian base)
#   make image IMAGE=URI [GPU=1]     build and tag it for a registry (GPU=1: TensorFlow's CUDA build), e.g.
#                                    europe-west4-docker.pkg.dev/PROJECT/taxifare/taxifare:TAG
#   make push IMAGE=URI              push it (podman, else docker; `gcloud auth configure-docker HOST` first)
# The default tag lives in pipeline/images.py; scripts/build_image.sh reads it when IMAGE is empty.

GPU ?= 0

image: ## build the pipeline image with podman (IMAGE=URI to tag it for a registry, GPU=1 for CUDA)
	GPU=$(GPU) scripts/build_image.sh $(IMAGE)

lock: ## re-pin the image's dependencies (requirements/image.lock) from pyproject.toml
	scripts/lock_image.sh

image-lint: $(STAMP) ## hadolint the Dockerfile, shellcheck the image scripts (when installed)
	$(BIN)/hadolint Dockerfile
	@if command -v shellcheck >/dev/null; then shellcheck scripts/*.sh; fi

image-test: $(STAMP) ## build the image and run one training step inside it (pytest -m image)
	$(BIN)/python -m pytest -m image tests/test_image.py $(PYTEST_ARGS)

push: ## push IMAGE=URI (podman push, else docker push)
	@test -n "$(IMAGE)" || { echo "error: give IMAGE=URI, e.g. make push IMAGE=REGION-docker.pkg.dev/PROJECT/REPO/taxifare:TAG" >&2; exit 2; }
	@if command -v podman >/dev/null; then \
		scripts/podman.sh push $(IMAGE); \
	elif command -v docker >/dev/null; then \
		docker push $(IMAGE); \
	else \
		echo "error: neither podman nor docker is installed" >&2; exit 1; \
	fi

.PHONY: image image-lint image-test push lock
