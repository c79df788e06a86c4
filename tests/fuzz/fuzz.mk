# tests/fuzz/ — fuzz targets (LLVMFuzzerTestOneInput) linked with a small gcc mutation
# driver; tests/integration/fuzz_smoke.sh runs each for a bounded, seeded number of inputs.
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZERS   := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/fuzz/%)

$(BUILD)/fuzz/%: $(BUILD)/obj/tests/fuzz/%.o $(BUILD)/obj/tests/fuzz/driver.o $(LIBHOSTD) $(LIBCLUSTER) $(LIBVMK) $(LIBFT) $(LIBVMOTION) $(LIBVMM) $(LIBPROTO) $(LIBKB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) $^ -o $@ $(HOSTD_LIBS) $(CLUSTER_LIBS) $(VMK_LIBS) $(PROTO_LIBS) $(VMOTION_LIBS) $(LDLIBS)
TESTS += $(FUZZERS)
