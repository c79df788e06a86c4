# hostagent/ — hostd, the API daemon: keel.vim.Vim as gRPC over HTTP/2 (libnghttp2) over TLS
# (OpenSSL memory BIOs) on libuv. Everything but main.c goes into libhostd.a for the unit
# tests. docs/hostd.md.
HOSTD_SRCS := $(filter-out hostagent/main.c,$(wildcard hostagent/*.c))
LIBHOSTD   := $(BUILD)/lib/libhostd.a
HOSTD_LIBS := $(shell pkg-config --libs libnghttp2 openssl libuv libprotobuf-c libcrypt)
$(LIBHOSTD): $(patsubst %.c,$(BUILD)/obj/%.o,$(HOSTD_SRCS))
LIBS += $(LIBHOSTD)

$(BUILD)/bin/hostd: $(BUILD)/obj/hostagent/main.o $(LIBHOSTD) $(LIBPROTO) $(LIBKB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) $^ -o $@ $(HOSTD_LIBS) $(PROTO_LIBS) $(LDLIBS)
BINS += $(if $(wildcard hostagent/main.c),$(BUILD)/bin/hostd)
