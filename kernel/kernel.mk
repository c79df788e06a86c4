# kernel/ — vmkernel, the host's kernel service layer: core (daemon, control socket, log),
# vm (VM registry, .vmx files, lifecycle, supervision), ds (datastores), res (cgroups and
# admission control), net (vSwitches, portgroups, taps). Everything but core/main.c goes
# into libvmk.a for the unit tests.
VMK_DIRS   := kernel/core kernel/vm kernel/ds kernel/res kernel/net kernel/cfg kernel/world
VMK_SRCS   := $(filter-out kernel/core/main.c,$(foreach d,$(VMK_DIRS),$(wildcard $(d)/*.c)))
LIBVMK     := $(BUILD)/lib/libvmk.a
# libvmk uses libha (datastore heartbeats), which uses libkb: whoever links libvmk lists
# VMK_LIBS after it, so these come after it in the static link order too.
VMK_LIBS   := -luv $(LIBHA) $(LIBKB) -lseccomp
$(LIBVMK): $(patsubst %.c,$(BUILD)/obj/%.o,$(VMK_SRCS))
LIBS += $(LIBVMK)

$(BUILD)/bin/vmkernel: $(BUILD)/obj/kernel/core/main.o $(LIBVMK) $(LIBHA) $(LIBPROTO) $(LIBKB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) $^ -o $@ $(VMK_LIBS) $(PROTO_LIBS) $(LDLIBS)
BINS += $(if $(wildcard kernel/core/main.c),$(BUILD)/bin/vmkernel)
