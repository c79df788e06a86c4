# mgmt-api/ — the client side: keel, the operator's command-line tool (it links libkeel,
# mgmt-api/libkeel/libkeel.mk, for --server).
KEEL_SRCS := $(wildcard mgmt-api/keel/*.c)

$(BUILD)/bin/keel: $(patsubst %.c,$(BUILD)/obj/%.o,$(KEEL_SRCS)) $(LIBKEEL) $(LIBPROTO) $(LIBKB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) $^ -o $@ $(LIBKEEL_LIBS) $(PROTO_LIBS) $(LDLIBS)
BINS += $(if $(KEEL_SRCS),$(BUILD)/bin/keel)
