# kernel/ntp/ — vmntpd, the host's time service (docs/ntp.md). Everything but main.c goes
# into libntp.a: keel links it too (`keel host ntp set` checks its servers with the
# daemon's own parser; `sync-status` parses chronyc's output with it), and so do the unit
# tests.
NTP_SRCS := $(filter-out kernel/ntp/main.c,$(wildcard kernel/ntp/*.c))
LIBNTP   := $(BUILD)/lib/libntp.a
$(LIBNTP): $(patsubst %.c,$(BUILD)/obj/%.o,$(NTP_SRCS))
LIBS += $(LIBNTP)

$(BUILD)/bin/vmntpd: $(BUILD)/obj/kernel/ntp/main.o $(LIBNTP) $(LIBPROTO) $(LIBKB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) $^ -o $@ $(PROTO_LIBS) -lm $(LDLIBS)
BINS += $(if $(wildcard kernel/ntp/main.c),$(BUILD)/bin/vmntpd)

# keel and the ntp unit tests: libntp after everything else, then libkb.
$(BUILD)/bin/keel: $(LIBNTP)
$(BUILD)/bin/keel: LDLIBS += $(LIBNTP) $(LIBKB) -lm
NTP_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_ntp_*.c))
$(NTP_TESTS): $(LIBNTP)
$(NTP_TESTS): LDLIBS += $(LIBNTP) $(LIBKB) -lm
