# Keel — top-level build. Component fragments live beside their sources (*/*.mk) and
# add to the variables below; sources are picked up by wildcard, so adding a file to a
# component needs no Makefile change.
#
#   make            build everything (build/bin/vmx, build/guest/kguest.elf, tests)
#   make deps       install the Debian packages the build, tests and benchmarks need
#   make test       deps + build + every unit and integration test; last line "N passed, N failed"
#   make asan       the same suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench      every benchmark (make bench-kernel, ...): lines "RESULT name value unit"
#   make format     apply .clang-format;  make V=1 shows commands

BUILD    ?= build
CC       ?= gcc
V        ?= 0
Q        := $(if $(filter 1,$(V)),,@)

WARN     := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
            -Wmissing-prototypes -Wformat=2 -Wundef -Wvla -Wno-unused-parameter -Wno-format-truncation \
            -Wno-missing-field-initializers -Wimplicit-fallthrough
CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 $(WARN) \
            -fstack-protector-strong -fno-omit-frame-pointer -MMD -MP \
            -I. -I$(BUILD)/gen $(SANFLAGS)
LDFLAGS  += $(SANFLAGS)
LDLIBS   += -lpthread

ifeq ($(ASAN),1)
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined
# gcc 12 reports false stringop-overflow errors on ASan-instrumented inlined code.
CFLAGS   += -Wno-stringop-overflow
BUILD    := build/asan
endif

BINS     :=
LIBS     :=
TESTS    :=
GUESTS   :=

.PHONY: all deps test asan bench demo demo-host format clean
# Nothing built is a throw-away intermediate (objects, generated code).
.SECONDARY:
all:

include lib/lib.mk
include proto/proto.mk
include kernel/guest/guest.mk
include ha/ha.mk
include vmotion/vmotion.mk
include ft/ft.mk
include kernel/vmm/vmm.mk
include kernel/kernel.mk
include kernel/syslog/syslog.mk
include kernel/snmp/snmp.mk
include kernel/ntp/ntp.mk
include clusterd/clusterd.mk
include hostagent/hostd.mk
include mgmt-api/libkeel/libkeel.mk
include mgmt-api/mgmt.mk
include tests/tests.mk
include tests/fuzz/fuzz.mk

all: $(BINS) $(GUESTS) $(TESTS)

$(BUILD)/obj/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/lib/%.a:
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

deps:
	$(Q)./tests/deps.sh

test: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)BUILD=$(BUILD) ./tests/run-tests

asan: deps
	$(Q)$(MAKE) --no-print-directory ASAN=1 all
	$(Q)BUILD=build/asan ./tests/run-tests

bench: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)BUILD=$(BUILD) ./tests/bench/run all

bench-%: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)BUILD=$(BUILD) ./tests/bench/run $*

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)BUILD=$(BUILD) ./mgmt-api/demo.sh

demo-host: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)BUILD=$(BUILD) ./mgmt-api/demo-host.sh

format:
	$(Q)clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
