# clusterd/ — the cluster daemon's replicated state on libraft: the FSM, the state, the
# command and snapshot codecs. Everything but main.c (none yet) goes into libcluster.a.
CLUSTER_SRCS := $(filter-out clusterd/main.c,$(wildcard clusterd/*.c))
LIBCLUSTER   := $(BUILD)/lib/libcluster.a
CLUSTER_LIBS := $(shell pkg-config --libs raft libuv)
$(LIBCLUSTER): $(patsubst %.c,$(BUILD)/obj/%.o,$(CLUSTER_SRCS))
LIBS += $(LIBCLUSTER)
