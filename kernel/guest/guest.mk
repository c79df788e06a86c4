# kernel/guest/ — kguest, Keel's freestanding x86-64 guest, and the tiny ucall-style
# payloads in tests/payloads/ used by the VMM tests. Built with gcc, no libc.
GUEST_CFLAGS := -std=gnu11 -O2 -g -ffreestanding -fno-builtin -fno-pic -fno-pie \
                -fno-stack-protector -fno-asynchronous-unwind-tables -mno-red-zone \
                -mgeneral-regs-only -mcmodel=small -Wall -Wextra -Werror \
                -Wno-unused-parameter -I. -Ikernel/guest -MMD -MP
GUEST_LDFLAGS := -nostdlib -static -no-pie -Wl,--build-id=none -Wl,-z,max-page-size=4096 \
                 -Wl,-z,noexecstack -Wl,--no-warn-rwx-segments

KGUEST       := $(BUILD)/guest/kguest.elf
KGUEST_OBJS  := $(patsubst %,$(BUILD)/gobj/%.o,$(basename $(wildcard kernel/guest/*.c kernel/guest/*.S)))
PAYLOADS     := $(patsubst tests/payloads/%.S,$(BUILD)/guest/payload_%.elf,$(wildcard tests/payloads/*.S))

$(BUILD)/gobj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  GUESTCC $<")
	$(Q)$(CC) $(GUEST_CFLAGS) -c $< -o $@

$(BUILD)/gobj/%.o: %.S
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  GUESTAS $<")
	$(Q)$(CC) $(GUEST_CFLAGS) -c $< -o $@

$(KGUEST): $(KGUEST_OBJS) kernel/guest/kguest.ld
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(GUEST_LDFLAGS) -Wl,-T,kernel/guest/kguest.ld $(KGUEST_OBJS) -o $@ -lgcc

$(BUILD)/guest/payload_%.elf: $(BUILD)/gobj/tests/payloads/%.o tests/payloads/payload.ld
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(GUEST_LDFLAGS) -Wl,-T,tests/payloads/payload.ld $< -o $@

GUESTS += $(if $(wildcard kernel/guest/*.c),$(KGUEST)) $(PAYLOADS)

# Header dependencies of the guest objects (the top-level include covers $(BUILD)/obj only).
-include $(shell find $(BUILD)/gobj -name '*.d' 2>/dev/null)
