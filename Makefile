# bitnet - top-level GNU Makefile.
#
#   make            the engine (libbitnet.a), the bitnet binary and the tests
#   make run        installs missing packages (make deps-run), builds the binary, opens the
#                   TUI (bitnet quickstart when there is no terminal)
#   make test       installs missing packages (make deps), builds, runs every test
#   make bench      kernels, the bundled model (pp/tg), training speed, monitor overhead, the monitor's CPU overhead
#   make bench-scaleout  three serve replicas behind haproxy sharing limits in Redis and the
#                   store in PostgreSQL (restarted 20 s in) when its server is installed (loopback)
#   make bench-vision  the bundled Fashion-MNIST models on 10,000 test images; ResNet-18 images/s
#                   and memory, bitnet vs onnxruntime
#   make sanitize   ASan + UBSan build running the whole test suite
#   make tsan       ThreadSanitizer build running the thread-pool tests
#   make install    PREFIX=/usr/local DESTDIR= (binary and man pages); make uninstall
#   make deps       installs missing Debian packages (as root) or prints the command;
#                   deps-run: only those make run needs (scripts/deps.sh says more)
#   make format     applies .clang-format
#
# Variables: CC, BUILD (output dir), WERROR=1 (warnings are errors; CI sets it),
# PREFIX, DESTDIR, V=1 (echo commands), CUDA=1 (the CUDA backend, engine/cuda/, with NVCC;
# CUDA_HOME, default /usr/local/cuda; a BUILD of its own); `make cuda-objs` compiles the .cu
# files only.

CC      ?= cc
BUILD   ?= build
PREFIX  ?= /usr/local
MANDIR  ?= $(PREFIX)/share/man
PKG_CONFIG ?= pkg-config

ARCH := $(shell uname -m)

WARN   := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla \
          -Wformat=2 -Wundef -fno-common
ifeq ($(WERROR),1)
WARN   += -Werror
endif
OPT    ?= -O2 -g
CSTD   := -std=c11 -D_GNU_SOURCE
# Hardening: stack protector, PIE and full RELRO always; _FORTIFY_SOURCE=3 where it can work
# (it needs optimisation, and the sanitizer builds check the same calls their own way).
HARDEN_CFLAGS  := -fstack-protector-strong -fPIE
HARDEN_LDFLAGS := -pie -Wl,-z,relro -Wl,-z,now
FORTIFY        := -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=3
ifneq ($(findstring -O0,$(OPT)),)
FORTIFY        :=
endif
CFLAGS_ALL = $(CSTD) $(OPT) $(FORTIFY) $(HARDEN_CFLAGS) $(WARN) -pthread -MMD -MP -Iengine/include $(INTERNAL_INC) $(ENGINE_CFLAGS) $(EXTRA_CFLAGS)
LDFLAGS_ALL = -pthread $(HARDEN_LDFLAGS) $(EXTRA_LDFLAGS)
# The engine's internal headers (engine/src/*.h) are on the include path of the engine's own
# objects and of the tests that check internals only; app/, ui/, db/ and common/ see
# engine/include. `private`: the engine objects a test depends on do not pass it on.
INTERNAL_INC :=
INTERNAL_TESTS := test_kernels test_model test_model_ops test_train

ifeq ($(SAN),1)
OPT    := -O1 -g -fno-omit-frame-pointer
FORTIFY :=
EXTRA_CFLAGS  += -fsanitize=address,undefined -fno-sanitize-recover=undefined
EXTRA_LDFLAGS += -fsanitize=address,undefined
endif
ifeq ($(TSAN),1)
OPT    := -O1 -g -fno-omit-frame-pointer
FORTIFY :=
EXTRA_CFLAGS  += -fsanitize=thread
EXTRA_LDFLAGS += -fsanitize=thread
endif

# Libraries, found with pkg-config.
# lapacke, openblas: the dense linear algebra of engine/src/linalg.c (bitnet/linalg.h)
# libjpeg (libjpeg-turbo), libpng, libexif: image decoding and EXIF orientation (bitnet/image.h)
ENGINE_PKGS := libpcre2-8 libzip libprotobuf-c lapacke openblas libjpeg libpng libexif
APP_PKGS  := libcjson nettle libmicrohttpd libcurl readline zlib libcrypt yaml-0.1 hiredis \
             $(ENGINE_PKGS)
TEST_PKGS := cmocka libcjson libcurl $(ENGINE_PKGS)
DB_PKGS   := sqlite3 nettle libpq
UI_PKGS   := ncursesw
DB_CFLAGS   = $(shell $(PKG_CONFIG) --cflags $(DB_PKGS) 2>/dev/null)
DB_LIBS     = $(shell $(PKG_CONFIG) --libs $(DB_PKGS) 2>/dev/null)
UI_CFLAGS   = $(shell $(PKG_CONFIG) --cflags $(UI_PKGS) 2>/dev/null)
UI_LIBS     = $(shell $(PKG_CONFIG) --libs $(UI_PKGS) 2>/dev/null)
APP_CFLAGS  = $(shell $(PKG_CONFIG) --cflags $(APP_PKGS) 2>/dev/null)
APP_LIBS    = $(shell $(PKG_CONFIG) --libs $(APP_PKGS) 2>/dev/null)
ENGINE_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(ENGINE_PKGS) 2>/dev/null)
TEST_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(TEST_PKGS) 2>/dev/null)
TEST_LIBS   = $(shell $(PKG_CONFIG) --libs $(TEST_PKGS) 2>/dev/null)
SYS_LIBS    := -lm

# A library pkg-config cannot find stops the build here, named with its Debian package
# ("missing library: libcjson (Debian package libcjson-dev); run make deps"), instead of a
# compiler error about a header later. Goals that install or clean check nothing; lib, bin and
# install need no test library (CMocka). scripts/deps.sh holds the Debian names.
PKG_NOCHECK_GOALS := deps deps-run run test check clean format uninstall cuda-objs
PKG_BUILD_GOALS   := lib bin install $(BUILD)/libbitnet.a $(BUILD)/bitnet
PKG_GOALS := $(filter-out $(PKG_NOCHECK_GOALS),$(or $(MAKECMDGOALS),all))
ifneq ($(PKG_GOALS),)
PKG_NEED := $(ENGINE_PKGS) $(APP_PKGS) $(DB_PKGS) $(UI_PKGS)
ifneq ($(filter-out $(PKG_BUILD_GOALS),$(PKG_GOALS)),)
PKG_NEED += $(TEST_PKGS)
endif
PKG_MISSING := $(shell PKG_CONFIG='$(PKG_CONFIG)' sh scripts/deps.sh --pkg-config $(PKG_NEED))
ifneq ($(PKG_MISSING),)
$(error $(PKG_MISSING))
endif
endif

# ---- sources ---------------------------------------------------------------------
# Kernel variants for one ISA live in their own files, compiled with their own flags.
ENGINE_ALL := $(wildcard engine/src/*.c)
ifeq ($(filter x86_64 i686 i386,$(ARCH)),)
ENGINE_ALL := $(filter-out %_avx2.c %_avx512.c,$(ENGINE_ALL))
endif
ifeq ($(filter aarch64 arm64,$(ARCH)),)
ENGINE_ALL := $(filter-out %_neon.c,$(ENGINE_ALL))
endif
ENGINE_OBJ := $(patsubst engine/src/%.c,$(BUILD)/engine/%.o,$(ENGINE_ALL))
LIB        := $(BUILD)/libbitnet.a
# ONNX and SentencePiece: engine/proto/*.proto are compiled by protoc-c at build time into
# $(BUILD)/gen and linked into the library (generated code is compiled without the warning flags).
PROTOC_C   ?= protoc-c
GEN_DIR    := $(BUILD)/gen
ENGINE_OBJ += $(BUILD)/engine/onnx.pb-c.o $(BUILD)/engine/sentencepiece_model.pb-c.o

# CUDA=1: engine/cuda/ (the .cu kernels by nvcc for sm_80 and sm_90 plus PTX of compute_90,
# the host side in C) replaces engine/src/cuda_none.c, and the programs link libcudart. The
# default build compiles no .cu file and links no CUDA library.
CUDA_HOME ?= /usr/local/cuda
NVCC      ?= $(CUDA_HOME)/bin/nvcc
CUDA_GENCODE := -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
                -gencode arch=compute_90,code=compute_90
# --fmad=false: no fused multiply-add where the CPU engine rounds twice (cuda_kernels.cu)
NVCC_FLAGS := -O3 -std=c++17 --fmad=false $(CUDA_GENCODE) -Xcompiler -fPIE,-Wall \
              -Iengine/include -Iengine/src -Iengine/cuda
CUDA_CU_OBJ := $(patsubst engine/cuda/%.cu,$(BUILD)/engine/cuda/%.o,$(wildcard engine/cuda/*.cu))
CUDA_HOST_OBJ := $(patsubst engine/cuda/%.c,$(BUILD)/engine/cuda/%.o,$(wildcard engine/cuda/*.c))
ifeq ($(CUDA),1)
ENGINE_OBJ := $(filter-out $(BUILD)/engine/cuda_none.o,$(ENGINE_OBJ)) $(CUDA_CU_OBJ) $(CUDA_HOST_OBJ)
SYS_LIBS   += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart -lstdc++
endif
# CUDA=emu (tests only): the backend's host side on the kernel emulator of tests/emu/, no
# GPU and no nvcc, so that bench --gpu and scripts/gpu-check.sh can be tried anywhere; the
# device it reports is "host emulator 0".
ifeq ($(CUDA),emu)
ENGINE_OBJ := $(filter-out $(BUILD)/engine/cuda_none.o,$(ENGINE_OBJ)) $(CUDA_HOST_OBJ) \
              $(BUILD)/engine/cuda/cuda_emu.o
endif

# db/: the sqlite history, a library of its own that knows the engine by its public headers.
DB_SRC     := $(wildcard db/*.c)
DB_OBJ     := $(patsubst db/%.c,$(BUILD)/db/%.o,$(DB_SRC))
DB_LIB     := $(BUILD)/libbitnetdb.a

# common/: the tier every front-end shares (the generation session, config and paths, hw, chat
# formats, the history hook); knows the engine by its public headers and db/, never app/ or ui/.
# Headers: common/include/common/*.h.
COMMON_SRC := $(wildcard common/*.c)
COMMON_OBJ := $(patsubst common/%.c,$(BUILD)/common/%.o,$(COMMON_SRC))
COMMON_LIB := $(BUILD)/libbitnetcommon.a

# ui/: the full-screen TUI (ncursesw); knows the engine by its public headers, db/ and common/
# (config, hw, the history hook, chat formats, the session), never app/ (no -Iapp).
UI_SRC     := $(wildcard ui/*.c)
UI_OBJ     := $(patsubst ui/%.c,$(BUILD)/ui/%.o,$(UI_SRC))
UI_LIB     := $(BUILD)/libbitnetui.a

# app/: the program's front-ends in folders (cli/ the commands and main, bench/, convert/ with
# the job queue, monitor/ with its sinks, serve/); a folder includes another's header by its
# folder ("monitor/monitor.h"), and only cli/ includes the others (test_include_paths.sh).
APP_SRC    := $(wildcard app/*/*.c)
APP_OBJ    := $(patsubst app/%.c,$(BUILD)/app/%.o,$(APP_SRC))
BIN        := $(BUILD)/bitnet
# the app's objects but main.o: the unit tests of app/ modules link them (never #include a .c)
APP_LIB    := $(BUILD)/libbitnetapp.a

TEST_SRC   := $(wildcard tests/unit/test_*.c)
TEST_BIN   := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(TEST_SRC))
TEST_HELP  := $(filter-out tests/unit/test_%.c,$(wildcard tests/unit/*.c))
TOOL_SRC   := $(wildcard tests/tools/*.c)
TOOL_BIN   := $(patsubst tests/tools/%.c,$(BUILD)/tools/%,$(TOOL_SRC))

ifneq ($(V),1)
Q := @
endif

.PHONY: all run test check bench bench-serve bench-scaleout bench-vision sanitize tsan install uninstall clean deps deps-run format \
        test-only lib bin tests

all: lib bin tests

lib: $(LIB) $(DB_LIB) $(COMMON_LIB) $(UI_LIB)
bin: $(BIN)
tests: $(TEST_BIN) $(TOOL_BIN)

$(BUILD)/engine/%.o: private INTERNAL_INC := -Iengine/src
$(addprefix $(BUILD)/tests/,$(INTERNAL_TESTS)): private INTERNAL_INC := -Iengine/src

$(BUILD)/engine/%_avx2.o: engine/src/%_avx2.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) -mavx2 -mfma -mf16c -c $< -o $@

$(BUILD)/engine/%_avx512.o: engine/src/%_avx512.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq \
		-mavx512vnni -c $< -o $@

$(BUILD)/engine/%_neon.o: engine/src/%_neon.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) -march=armv8.2-a+dotprod -c $< -o $@

$(BUILD)/engine/%.o: engine/src/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/engine/cuda/%.o: engine/cuda/%.cu engine/cuda/cuda_internal.h engine/cuda/cuda_w2a8.h
	@mkdir -p $(dir $@)
	@echo "  NVCC    $<"
	$(Q)$(NVCC) $(NVCC_FLAGS) -c $< -o $@

$(BUILD)/engine/cuda/%.o: engine/cuda/%.c engine/cuda/cuda_internal.h
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) -Iengine/src -Iengine/cuda -c $< -o $@

$(BUILD)/engine/cuda/cuda_emu.o: tests/emu/cuda_emu.c engine/cuda/cuda_internal.h
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) -Iengine/cuda -c $< -o $@

.PHONY: cuda-objs
cuda-objs: $(CUDA_CU_OBJ) $(CUDA_HOST_OBJ)

$(GEN_DIR)/%.pb-c.c $(GEN_DIR)/%.pb-c.h: engine/proto/%.proto
	@mkdir -p $(GEN_DIR)
	@echo "  PROTOC  $<"
	$(Q)$(PROTOC_C) --c_out=$(GEN_DIR) --proto_path=engine/proto $<

$(BUILD)/engine/%.pb-c.o: $(GEN_DIR)/%.pb-c.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CSTD) $(OPT) $(HARDEN_CFLAGS) -pthread -MMD -MP -I$(GEN_DIR) $(ENGINE_CFLAGS) $(EXTRA_CFLAGS) -c $< -o $@

$(BUILD)/engine/onnx.o: engine/src/onnx.c $(GEN_DIR)/onnx.pb-c.h
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) -I$(GEN_DIR) -c $< -o $@

$(BUILD)/engine/spm_model.o: engine/src/spm_model.c $(GEN_DIR)/sentencepiece_model.pb-c.h
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) -I$(GEN_DIR) -c $< -o $@

$(LIB): $(ENGINE_OBJ)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/db/%.o: db/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) -Idb/include $(DB_CFLAGS) -c $< -o $@

$(DB_LIB): $(DB_OBJ)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/common/%.o: common/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) -Icommon/include -Idb/include $(DB_CFLAGS) $(APP_CFLAGS) -c $< -o $@

$(COMMON_LIB): $(COMMON_OBJ)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/ui/%.o: ui/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) -Iui -Icommon/include -Idb/include $(APP_CFLAGS) $(UI_CFLAGS) -c $< -o $@

$(UI_LIB): $(UI_OBJ)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/app/%.o: app/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) -Iapp -Icommon/include -Idb/include $(APP_CFLAGS) -c $< -o $@

$(BIN): $(APP_OBJ) $(UI_LIB) $(COMMON_LIB) $(DB_LIB) $(LIB)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $(APP_OBJ) $(UI_LIB) $(COMMON_LIB) $(DB_LIB) $(LIB) $(APP_LIBS) $(UI_LIBS) \
		$(DB_LIBS) $(SYS_LIBS)

$(APP_LIB): $(filter-out $(BUILD)/app/cli/main.o,$(APP_OBJ))
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/tests/%: tests/unit/%.c $(TEST_HELP) $(UI_LIB) $(APP_LIB) $(COMMON_LIB) $(DB_LIB) $(LIB)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) -Itests/unit -Icommon/include -Idb/include $(TEST_CFLAGS) $(DB_CFLAGS) \
		$(APP_CFLAGS) $(UI_CFLAGS) $(LDFLAGS_ALL) -o $@ $< $(TEST_HELP) $(UI_LIB) $(APP_LIB) \
		$(COMMON_LIB) $(DB_LIB) $(LIB) $(TEST_LIBS) $(APP_LIBS) $(UI_LIBS) $(DB_LIBS) $(SYS_LIBS)

# test_cuda_emu: the CUDA backend's host side (engine/cuda/*.c) on the kernel emulator of
# tests/emu/ (no GPU, no nvcc); their bn_cuda_* replace cuda_none.o of the library. The test
# itself sees engine/include only, as every test but the internal ones.
CUDA_EMU_OBJ := $(CUDA_HOST_OBJ) $(BUILD)/engine/cuda/cuda_emu.o
$(BUILD)/tests/test_cuda_emu: tests/unit/test_cuda_emu.c $(CUDA_EMU_OBJ) $(TEST_HELP) $(UI_LIB) \
		$(APP_LIB) $(COMMON_LIB) $(DB_LIB) $(LIB)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) -Itests/unit -Icommon/include -Idb/include $(TEST_CFLAGS) \
		$(LDFLAGS_ALL) -o $@ $< $(CUDA_EMU_OBJ) $(TEST_HELP) $(UI_LIB) $(APP_LIB) $(COMMON_LIB) \
		$(DB_LIB) $(LIB) $(TEST_LIBS) $(APP_LIBS) $(UI_LIBS) $(DB_LIBS) $(SYS_LIBS)

$(BUILD)/tools/%: tests/tools/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) $(TEST_CFLAGS) $(LDFLAGS_ALL) -o $@ $< $(TEST_LIBS)

# ---- the two commands of the README ---------------------------------------------------

# deps: what make run and make test need; deps-run: only what make run needs (no test tools)
deps:
	@sh scripts/deps.sh

deps-run:
	@sh scripts/deps.sh --run

# run: the TUI on a terminal; else `bitnet quickstart` (a tutorial of generate, bench and
# doctor on the bundled model); without a bundled model, the version and a kernel benchmark.
run: deps-run
	@$(MAKE) --no-print-directory bin
	$(BIN) --version
	@if [ -t 0 ] && [ -t 1 ] && [ -n "$$TERM" ] && [ "$$TERM" != dumb ] && \
	    $(BIN) help tui >/dev/null 2>&1; then \
		echo "$(BIN) tui"; $(BIN) tui; \
	elif ls assets/models/*.gguf >/dev/null 2>&1; then \
		echo "$(BIN) quickstart"; $(BIN) quickstart; \
	else \
		echo "no bundled model in assets/models, so no quickstart: the kernel benchmark instead"; \
		echo "$(BIN) bench kernels --quick"; $(BIN) bench kernels --quick; \
	fi

test: deps
	@$(MAKE) --no-print-directory test-only

check: test

test-only: all
	@sh scripts/run-tests.sh $(BUILD)

bench: all
	$(BIN) bench kernels
	$(BIN) bench -t 1,2
	$(BIN) train bench -t 1,2
	@sh scripts/bench-monitor.sh $(BUILD)
	@if [ -n "$$LLAMA_BENCH" ]; then \
		m=$(BUILD)/bench-2b4t-bitnet-tq2_0.gguf; \
		[ -f "$$m" ] || $(BIN) synth --shape 2b4t --arch bitnet --type tq2_0 -o "$$m" || exit 1; \
		BITNET=$(BIN) sh scripts/bench-compare.sh "$$m"; \
	else \
		echo "bench: LLAMA_BENCH=/path/to/llama-bench adds a side-by-side run with llama.cpp"; \
	fi
	@if [ -n "$$IK_LLAMA_BENCH" ]; then \
		m=$(BUILD)/bench-2b4t-i2_s.gguf; ik=$(BUILD)/bench-2b4t-ik-iq2_bn.gguf; \
		ikpp=$(BUILD)/bench-2b4t-ik-iq2_bn_r4.gguf; \
		q=$${IK_LLAMA_QUANTIZE:-$$(dirname "$$IK_LLAMA_BENCH")/llama-quantize}; \
		[ -x "$$q" ] || { echo "bench: $$q is not an executable file (set IK_LLAMA_QUANTIZE)" >&2; exit 1; }; \
		[ -f "$$m" ] || $(BIN) synth --shape 2b4t --type i2_s -o "$$m" || exit 1; \
		for f in "$$ik IQ2_BN" "$$ikpp IQ2_BN_R4"; do set -- $$f; [ -f "$$1" ] && continue; \
			"$$q" --allow-requantize "$$m" "$$1.tmp" "$$2" 2 >"$$1.log" 2>&1 && mv "$$1.tmp" "$$1" || \
			{ rm -f "$$1.tmp"; tail -3 "$$1.log" >&2; echo "bench: $$q cannot convert $$m to $$2" >&2; exit 1; }; done; \
		BITNET=$(BIN) IK_MODEL="$$ik" IK_MODEL_PP="$$ikpp" sh scripts/bench-compare.sh "$$m"; \
	else \
		echo "bench: IK_LLAMA_BENCH=/path/to/ik_llama.cpp/llama-bench adds a side-by-side run with ik_llama.cpp"; \
	fi

# bench-serve: `bitnet serve` under 1, 4 and 16 concurrent streams (aggregate tokens/s, time to
# first token, /health and /v1/models latency) on a synthetic 2B4T (BENCH_SERVE_MODEL: another
# model); LLAMA_SERVER=/path/to/llama-server [LLAMA_SERVER_MODEL=...] adds it side by side
bench-serve: all
	@m=$${BENCH_SERVE_MODEL:-$(BUILD)/bench-2b4t-i2_s.gguf}; \
	if [ -z "$$BENCH_SERVE_MODEL" ] && [ ! -f "$$m" ]; then \
		$(BIN) synth --shape 2b4t --type i2_s -o "$$m" || exit 1; fi; \
	python3 scripts/bench-serve.py --bitnet $(BIN) -m "$$m" \
		$${LLAMA_SERVER:+--llama-server "$$LLAMA_SERVER"} \
		$${LLAMA_SERVER_MODEL:+--llama-model "$$LLAMA_SERVER_MODEL"} $(BENCH_SERVE_ARGS)

# bench-scaleout: three serve --tenants --redis replicas behind haproxy with a Redis, on
# loopback (scripts/bench-scaleout.sh): 100 clients for 60 s, one replica killed at 30 s; the
# figures and the checks (the limit across replicas, the ledger against what clients saw)
bench-scaleout: bin
	BITNET=$(BIN) sh scripts/bench-scaleout.sh --clients 100 --seconds 60 --kill-after 30 \
		$(if $(wildcard /usr/lib/postgresql/*/bin/initdb),--postgres --pg-restart-after 20) \
		$(BENCH_SCALEOUT_ARGS)

# bench-vision: the bundled Fashion-MNIST classifiers on all 10,000 test images of Debian's
# dataset-fashion-mnist against PyTorch's predictions (test_vision_fashion.sh with
# FASHION_N=10000), then ResNet-18 at 224x224, images/s at batch 1 and 8 on 1 and 2 threads and
# peak memory, bitnet (ternary) vs onnxruntime (float) in one run (scripts/bench-vision.py;
# torch, onnx and onnxruntime from PyPI)
bench-vision: bin $(BUILD)/tools/jsonget
	FASHION_N=10000 BITNET=$(BIN) JSONGET=$(BUILD)/tools/jsonget sh tests/cli/test_vision_fashion.sh
	python3 scripts/bench-vision.py --bitnet $(BIN) --work $(BUILD)/bench-vision $(BENCH_VISION_ARGS)

sanitize:
	@$(MAKE) --no-print-directory BUILD=build-san SAN=1 test-only

tsan:
	@$(MAKE) --no-print-directory BUILD=build-tsan TSAN=1 build-tsan/tests/test_threadpool
	build-tsan/tests/test_threadpool

install: $(BIN)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/bitnet
	install -m 644 man/bitnet.1 $(DESTDIR)$(MANDIR)/man1/bitnet.1
	install -m 644 man/bitnet-config.5 $(DESTDIR)$(MANDIR)/man5/bitnet-config.5
	install -d $(DESTDIR)$(PREFIX)/share/bitnet/models
	install -m 644 assets/models/*.gguf assets/models/SHA256SUMS assets/models/MODEL_CARD.md \
		$(DESTDIR)$(PREFIX)/share/bitnet/models/
	install -d $(DESTDIR)$(PREFIX)/share/bitnet/vision
	install -m 644 assets/vision/*.gguf assets/vision/fashion-labels.txt assets/vision/SHA256SUMS \
		assets/vision/MODEL_CARD.md $(DESTDIR)$(PREFIX)/share/bitnet/vision/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/bitnet $(DESTDIR)$(MANDIR)/man1/bitnet.1 \
		$(DESTDIR)$(MANDIR)/man5/bitnet-config.5
	rm -rf $(DESTDIR)$(PREFIX)/share/bitnet

format:
	clang-format -i $$(find engine app common tests ui db -name '*.[ch]' 2>/dev/null)

clean:
	rm -rf build build-san build-tsan build-fuzz

# the CUDA host objects too, which test_cuda_emu links in any build (model_internal.h)
-include $(ENGINE_OBJ:.o=.d) $(DB_OBJ:.o=.d) $(COMMON_OBJ:.o=.d) $(UI_OBJ:.o=.d) $(APP_OBJ:.o=.d) $(TEST_BIN:=.d) \
         $(CUDA_EMU_OBJ:.o=.d)

# ---- fuzzing ---------------------------------------------------------------------------
# Each tests/fuzz/fuzz_<name>.c defines LLVMFuzzerTestOneInput. `make all` links it with
# tests/fuzz/replay.c into $(BUILD)/tests/fuzzreplay_<name>, which scripts/run-tests.sh runs
# over tests/fuzz/corpus/<name> (no clang needed). `make fuzz` (optional: clang 14 with
# libFuzzer) builds build-fuzz/fuzz_<name> with ASan+UBSan and runs each for FUZZ_SECONDS;
# new inputs go to build-fuzz/corpus/<name>, crashes to build-fuzz/crash-<name>-*.
# `make fuzz-merge` adds the inputs that raise coverage to the saved corpus.
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_NAMES   := $(patsubst tests/fuzz/fuzz_%.c,%,$(FUZZ_SRC))
FUZZ_REPLAY  := $(patsubst %,$(BUILD)/tests/fuzzreplay_%,$(FUZZ_NAMES))
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_BUILD   := build-fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_LIBS     = $(shell $(PKG_CONFIG) --libs $(ENGINE_PKGS) 2>/dev/null)

.PHONY: fuzz fuzz-build fuzz-merge
.PRECIOUS: $(BUILD)/tests/fuzz/%.o
tests: $(FUZZ_REPLAY)

$(BUILD)/tests/fuzz/%.o: tests/fuzz/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/tests/fuzzreplay_%: $(BUILD)/tests/fuzz/fuzz_%.o $(BUILD)/tests/fuzz/replay.o $(LIB)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(FUZZ_LIBS) $(SYS_LIBS)

fuzz-build:
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) \
		OPT="-O1 -g -fno-omit-frame-pointer" \
		EXTRA_CFLAGS="$(FUZZ_SAN) -fsanitize=fuzzer-no-link" EXTRA_LDFLAGS="$(FUZZ_SAN)" \
		$(FUZZ_BUILD)/libbitnet.a
	@for n in $(FUZZ_NAMES); do \
		echo "  LD      $(FUZZ_BUILD)/fuzz_$$n"; \
		$(FUZZ_CC) $(CSTD) -O1 -g -fno-omit-frame-pointer -Iengine/include $(FUZZ_SAN) \
			-fsanitize=fuzzer -o $(FUZZ_BUILD)/fuzz_$$n tests/fuzz/fuzz_$$n.c \
			$(FUZZ_BUILD)/libbitnet.a $(FUZZ_LIBS) $(SYS_LIBS) -pthread || exit 1; \
	done

fuzz: fuzz-build
	@for n in $(FUZZ_NAMES); do \
		mkdir -p $(FUZZ_BUILD)/corpus/$$n; \
		dict=""; [ -f tests/fuzz/$$n.dict ] && dict="-dict=tests/fuzz/$$n.dict"; \
		echo "  FUZZ    $$n for $(FUZZ_SECONDS) s"; \
		$(FUZZ_BUILD)/fuzz_$$n -max_total_time=$(FUZZ_SECONDS) -max_len=65536 $$dict \
			-artifact_prefix=$(FUZZ_BUILD)/crash-$$n- \
			$(FUZZ_BUILD)/corpus/$$n tests/fuzz/corpus/$$n || exit 1; \
	done

fuzz-merge: fuzz-build
	@for n in $(FUZZ_NAMES); do \
		mkdir -p $(FUZZ_BUILD)/corpus/$$n tests/fuzz/corpus/$$n; \
		$(FUZZ_BUILD)/fuzz_$$n -merge=1 tests/fuzz/corpus/$$n $(FUZZ_BUILD)/corpus/$$n || exit 1; \
	done

-include $(wildcard $(BUILD)/tests/fuzz/*.d)
