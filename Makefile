# Thin wrapper around CMake. The two commands of the README:
#   make demo   set up, build, run the default job
#   make test   set up, build, run the whole Check suite
BUILD ?= build
JOBS  ?= $(shell nproc)
CMAKE_FLAGS ?=
ifeq ($(CI),true)
CMAKE_FLAGS += -DCRL_WERROR=ON
endif

.PHONY: all deps configure build test demo bench lint format asan test-asan fuzz clean

all: build

deps:
	@./scripts/install-deps

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

configure: deps $(BUILD)/CMakeCache.txt

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j 2

# The demo sets up and builds quietly itself (one line per stage, logs in
# runs/demo-logs/).
demo:
	@./scripts/demo $(BUILD)

bench: build
	@for b in $(BUILD)/bench_sgemm $(BUILD)/bench_sac_update $(BUILD)/bench_env_step; do \
	  [ -x $$b ] && $$b; done

# ASan + UBSan build of the whole suite in its own tree.
asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCRL_SANITIZE=ON $(CMAKE_FLAGS)
	cmake --build build-asan -j $(JOBS)

test-asan: asan
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 CRL_SANITIZED=1 ctest --output-on-failure -j 2

# libFuzzer harnesses (fuzz/README.md): clang build in build-fuzz, each
# harness FUZZ_TIME seconds from the committed seeds in fuzz/corpus/; the
# working corpora and any crash inputs go to FUZZ_DIR.
FUZZ_TIME ?= 60
FUZZ_DIR  ?= /tmp/crl-fuzz
FUZZERS = policy_load:. checkpoint:checkpoint episode:episode dataset:dataset
fuzz: deps
	CC=clang cmake -S . -B build-fuzz -DCRL_FUZZ=ON -DCRL_BUILD_TESTS=OFF \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build build-fuzz -j $(JOBS) --target fuzz_policy_load fuzz_checkpoint \
	  fuzz_episode fuzz_dataset
	@fail=0; for fz in $(FUZZERS); do \
	  name=$${fz%%:*}; seeds=fuzz/corpus/$${fz#*:}; \
	  mkdir -p $(FUZZ_DIR)/$$name/corpus $(FUZZ_DIR)/$$name/crashes; \
	  find $$seeds -maxdepth 1 -type f ! -name '*.md' -exec cp {} $(FUZZ_DIR)/$$name/corpus/ \; ; \
	  echo "== fuzz_$$name ($(FUZZ_TIME) s)"; \
	  build-fuzz/fuzz_$$name -max_total_time=$(FUZZ_TIME) -max_len=65536 \
	    -artifact_prefix=$(FUZZ_DIR)/$$name/crashes/ $(FUZZ_DIR)/$$name/corpus \
	    > $(FUZZ_DIR)/$$name/log.txt 2>&1 || fail=1; \
	  grep -E "^Done|ERROR|SUMMARY" $(FUZZ_DIR)/$$name/log.txt; \
	done; exit $$fail

SOURCES = $(shell git ls-files '*.c' '*.h')
# check-modules: the module map of docs/design.md (which module may include
# which); its self-test runs it on small trees with violations.
lint: deps
	./scripts/check-modules
	sh tests/test_check_modules.sh
	clang-format --dry-run --Werror $(SOURCES)
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	  --inline-suppr --suppress=missingIncludeSystem -I include -I include/crl \
	  core nn envs replay subspace agents analysis store viz embed cli bench examples

format:
	clang-format -i $(SOURCES)

clean:
	rm -rf $(BUILD) build-asan
