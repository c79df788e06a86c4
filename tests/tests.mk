# tests/ — one cmocka binary per tests/unit/test_*.c; other .c files in tests/unit are
# shared helpers linked into every test binary.
UNIT_SRCS   := $(wildcard tests/unit/test_*.c)
UNIT_HELP   := $(filter-out $(UNIT_SRCS),$(wildcard tests/unit/*.c))
LIBTESTHELP := $(BUILD)/lib/libtesthelp.a
$(LIBTESTHELP): $(patsubst %.c,$(BUILD)/obj/%.o,$(UNIT_HELP))

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(LIBTESTHELP) $(LIBHOSTD) $(LIBHA) $(LIBCLUSTER) $(LIBVMK) $(LIBFT) $(LIBVMOTION) $(LIBVMM) $(LIBKEEL) $(LIBPROTO) $(LIBKB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) $^ -o $@ -lcmocka $(HOSTD_LIBS) $(VMK_LIBS) $(CLUSTER_LIBS) $(PROTO_LIBS) $(VMOTION_LIBS) $(LDLIBS)
TESTS += $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
