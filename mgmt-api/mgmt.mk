# mgmt-api/ — the client side: keel, the operator's command-line tool.
KEEL_SRCS := $(wildcard mgmt-api/keel/*.c)

$(BUILD)/bin/keel: $(patsubst %.c,$(BUILD)/obj/%.o,$(KEEL_SRCS)) $(LIBPROTO) $(LIBKB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) $^ -o $@ $(PROTO_LIBS) $(LDLIBS)
BINS += $(if $(KEEL_SRCS),$(BUILD)/bin/keel)
