# kernel/syslog/ — vmsyslogd, the remote syslog forwarder (docs/syslog.md). Everything but
# main.c goes into libvsl.a. keel links it too: `keel host syslog set` checks its options
# with the daemon's own parser (conf.c) before writing anything, and so do the unit tests.
VSL_SRCS := $(filter-out kernel/syslog/main.c,$(wildcard kernel/syslog/*.c))
LIBVSL   := $(BUILD)/lib/libvsl.a
VSL_LIBS := $(shell pkg-config --libs openssl libuv libprotobuf-c)
$(LIBVSL): $(patsubst %.c,$(BUILD)/obj/%.o,$(VSL_SRCS))
LIBS += $(LIBVSL)

$(BUILD)/bin/vmsyslogd: $(BUILD)/obj/kernel/syslog/main.o $(LIBVSL) $(LIBPROTO) $(LIBKB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) $^ -o $@ $(VSL_LIBS) $(PROTO_LIBS) $(LDLIBS)
BINS += $(if $(wildcard kernel/syslog/main.c),$(BUILD)/bin/vmsyslogd)

# keel and the syslog unit tests: libvsl after everything else, then libkb for what it uses.
$(BUILD)/bin/keel: $(LIBVSL)
$(BUILD)/bin/keel: LDLIBS += $(LIBVSL) $(LIBKB)
VSL_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_syslog_*.c))
$(VSL_TESTS): $(LIBVSL)
$(VSL_TESTS): LDLIBS += $(LIBVSL) $(LIBKB) $(VSL_LIBS)
