# clusterd/ — the cluster daemon: the replicated state on libraft (the FSM, the state, the
# command and snapshot codecs), the Raft node and the control socket. Everything but
# main.c goes into libcluster.a for the unit tests.
CLUSTER_SRCS := $(filter-out clusterd/main.c,$(wildcard clusterd/*.c))
LIBCLUSTER   := $(BUILD)/lib/libcluster.a
CLUSTER_LIBS := $(shell pkg-config --libs raft libuv) $(shell pkg-config --libs openssl)
$(LIBCLUSTER): $(patsubst %.c,$(BUILD)/obj/%.o,$(CLUSTER_SRCS))
LIBS += $(LIBCLUSTER)

$(BUILD)/bin/clusterd: $(BUILD)/obj/clusterd/main.o $(LIBCLUSTER) $(LIBVMK) $(LIBHA) $(LIBPROTO) $(LIBKB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) $^ -o $@ $(CLUSTER_LIBS) $(VMK_LIBS) $(PROTO_LIBS) $(LDLIBS)
BINS += $(if $(wildcard clusterd/main.c),$(BUILD)/bin/clusterd)
