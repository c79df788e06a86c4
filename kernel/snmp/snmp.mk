# kernel/snmp/ — keel-snmpd, the SNMP subagent (docs/snmp.md). conf.c and mib.c go into
# libksnmp.a, which keel (`keel host snmp`) and the unit tests link without net-snmp; the
# daemon adds poll.c, agent.c and main.c and links net-snmp's agent library.
KSNMP_LIB_SRCS := kernel/snmp/conf.c kernel/snmp/mib.c
KSNMP_D_SRCS   := kernel/snmp/poll.c kernel/snmp/agent.c kernel/snmp/main.c
LIBKSNMP       := $(BUILD)/lib/libksnmp.a
KSNMP_LIBS     := -lnetsnmpagent -lnetsnmp
$(LIBKSNMP): $(patsubst %.c,$(BUILD)/obj/%.o,$(KSNMP_LIB_SRCS))
LIBS += $(LIBKSNMP)

$(BUILD)/bin/keel-snmpd: $(patsubst %.c,$(BUILD)/obj/%.o,$(KSNMP_D_SRCS)) $(LIBKSNMP) $(LIBPROTO) $(LIBKB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) $^ -o $@ $(KSNMP_LIBS) $(PROTO_LIBS) $(LDLIBS)
BINS += $(if $(wildcard kernel/snmp/main.c),$(BUILD)/bin/keel-snmpd)

# keel and the snmp unit tests: libksnmp after everything else, then libkb for what it uses.
$(BUILD)/bin/keel: $(LIBKSNMP)
$(BUILD)/bin/keel: LDLIBS += $(LIBKSNMP) $(LIBKB)
KSNMP_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_snmp_*.c))
$(KSNMP_TESTS): $(LIBKSNMP)
$(KSNMP_TESTS): LDLIBS += $(LIBKSNMP) $(LIBKB)
