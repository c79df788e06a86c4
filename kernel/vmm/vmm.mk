# kernel/vmm/ — vmx, the per-VM monitor. Everything but main.c goes into libvmm.a so the
# VMM unit tests can drive it directly.
VMM_SRCS := $(filter-out kernel/vmm/main.c kernel/vmm/vmxctl.c,$(shell find kernel/vmm -name "*.c"))
LIBVMM   := $(BUILD)/lib/libvmm.a
$(LIBVMM): $(patsubst %.c,$(BUILD)/obj/%.o,$(VMM_SRCS))
LIBS += $(LIBVMM)

$(BUILD)/bin/vmx: $(BUILD)/obj/kernel/vmm/main.o $(LIBFT) $(LIBVMOTION) $(LIBVMM) $(LIBHA) $(LIBPROTO) $(LIBKB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) $^ -o $@ $(PROTO_LIBS) $(VMOTION_LIBS) $(LDLIBS)
BINS += $(BUILD)/bin/vmx

# vmxctl: a small client of one vmx's control socket, for tests, benchmarks and debugging.
$(BUILD)/bin/vmxctl: $(BUILD)/obj/kernel/vmm/vmxctl.o $(LIBPROTO) $(LIBKB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) $^ -o $@ $(PROTO_LIBS) $(LDLIBS)
BINS += $(BUILD)/bin/vmxctl
