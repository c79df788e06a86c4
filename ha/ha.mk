# ha/ — leases and VM locks on shared datastores: host heartbeat records, lease
# observation, self-fencing and the one-owner lock rules; the HA restart planner (plan.c);
# placement and DRS balancing (place.c, drs.c, docs/drs.md). Linked into clusterd, vmkernel
# and vmx; includes lib/ headers only.
LIBHA := $(BUILD)/lib/libha.a
$(LIBHA): $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard ha/*.c))
LIBS += $(LIBHA)
