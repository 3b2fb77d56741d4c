# A thin front to CMake. `make demo` and `make check` work on a fresh
# Debian 12 machine as root: they install what they need first.
BUILD ?= build
SANITIZE ?= 0
JOBS ?= $(shell nproc)

ifeq ($(SANITIZE),1)
BUILD := $(BUILD)-sanitize
CMAKE_FLAGS += -DLII_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
endif

# Debian packages the build, the tests and the demo use.
DEPS := cmake make gcc pkg-config tar gzip curl ca-certificates \
        libuv1-dev libsystemd-dev libjson-c-dev libssl-dev libcurl4-openssl-dev \
        libarchive-dev libmicrohttpd-dev libinih-dev libhttp-parser-dev check \
        systemd minisign nginx-light openssl util-linux coreutils \
        scdoc dpkg-dev file binutils mmdebstrap systemd-container procps jq clang-format \
        etcd-server etcd-client libfaketime
BENCH_DEPS := linux-perf
# clang and its runtimes (libFuzzer, ASan, UBSan) for `make fuzz`.
FUZZ_DEPS := clang libclang-rt-dev

.PHONY: all build deps bench-deps check check-unit check-integration check-system deb demo demo-fleet clean \
        format check-format

all: build

# Installs the packages of $(1) that are missing (apt-get, as root).
define install_missing
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
		grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "Installing:" $$missing; \
		if [ "$$(id -u)" != 0 ]; then echo "make deps: run as root to install packages" >&2; exit 1; fi; \
		if [ -z "$$(ls /var/lib/apt/lists/ 2>/dev/null | grep -v -e lock -e partial -e auxfiles)" ]; then \
			apt-get update -q; fi; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing \
		|| { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			--no-install-recommends $$missing; }; \
	fi
endef

deps:
	$(call install_missing,$(DEPS))

# perf counts liid's idle wake-ups and takes the profiles in BENCHMARKS.md.
bench-deps: deps
	$(call install_missing,$(BENCH_DEPS))

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	ln -sf $(BUILD)/compile_commands.json compile_commands.json

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

check: build
	cd $(BUILD) && ctest --output-on-failure

check-unit: build
	cd $(BUILD) && ctest --output-on-failure -L unit

check-integration: build
	cd $(BUILD) && ctest --output-on-failure -L integration

# The system test: the .deb installed, used and upgraded on a booted
# Debian bookworm (systemd-nspawn); part of `make check` too.
check-system: build
	cd $(BUILD) && ctest --output-on-failure -L system

# lii_<version>_amd64.deb in $(BUILD)/deb/, the same bytes for the same commit.
deb: build
	cmake --build $(BUILD) --target deb

demo: build
	tests/demo.sh $(BUILD)

# Three nodes and a 3-member etcd on one machine: v1, a canary of v2, then
# v2 everywhere (tests/demo-fleet.sh).
demo-fleet: build
	tests/demo-fleet.sh $(BUILD)

# The chaos test alone, N rounds (liid killed with SIGKILL once a round,
# amid rollouts, reverts, refused builds, operator actions and removals of
# several services); `make check` runs 40. It runs the test program itself,
# without CTest's time limit, with a Check time limit its own (seconds per
# round); the last line of its output, also in $(BUILD)/chaos-summary.txt,
# sums the run up. SEED=S replays a run.
N ?= 1000
.PHONY: chaos
chaos: build
	LII_CHAOS_ROUNDS=$(N) LII_CHAOS_SUMMARY=$(BUILD)/chaos-summary.txt \
		$(if $(SEED),LII_CHAOS_SEED=$(SEED)) CK_RUN_CASE=chaos $(BUILD)/tests/test_chaos
	@cat $(BUILD)/chaos-summary.txt

# RELIABILITY.md from real runs: every fuzz target for FUZZ_SECONDS, `make
# chaos` with N rounds and the fault-injection tests (tests/reliability/run).
.PHONY: reliability
reliability: build
	tests/reliability/run --fuzz-seconds $(FUZZ_SECONDS) --chaos-rounds $(N)

# The benchmark suite (tests/bench): writes BENCHMARKS.md; QUICK=1 runs each
# scenario once and small, into $(BUILD)/bench/BENCHMARKS.quick.md (for CI).
.PHONY: bench
bench: bench-deps build
	tests/bench/run --build $(BUILD) $(if $(filter 1,$(QUICK)),--quick)

# The libFuzzer targets of tests/fuzz, built with clang in $(FUZZ_BUILD),
# each run for FUZZ_SECONDS from its committed corpus; new inputs and
# crash reproducers go to $(FUZZ_BUILD)/fuzz/TARGET/. `make check` replays
# the committed corpora (unit/fuzz_TARGET).
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= desired minisign unpack state config api etcd
.PHONY: fuzz fuzz-build
fuzz-build: deps
	$(call install_missing,$(FUZZ_DEPS))
	cmake -S . -B $(FUZZ_BUILD) -DLII_FUZZ=ON -DCMAKE_C_COMPILER=clang
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target $(addprefix fuzz_,$(FUZZ_TARGETS))

fuzz: fuzz-build
	tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# The C sources as .clang-format says; check-format changes nothing and
# fails on a file that format would change (CI runs it).
SOURCES = $(shell git ls-files '*.c' '*.h')
format:
	clang-format -i $(SOURCES)

check-format: deps
	clang-format --dry-run --Werror $(SOURCES)

clean:
	rm -rf build build-sanitize build-fuzz compile_commands.json
