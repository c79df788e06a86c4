# mgmt-api/libkeel/ — libkeel, the C client of keel.vim.Vim (hostd's API) over libcurl
# (HTTP/2 over TLS, OpenSSL backend). docs/libkeel.md. Users link $(LIBKEEL) before
# $(LIBPROTO) $(LIBKB) and add $(LIBKEEL_LIBS).
LIBKEEL      := $(BUILD)/lib/libkeel.a
LIBKEEL_LIBS := $(shell pkg-config --libs libcurl openssl 2>/dev/null || echo -lcurl -lssl -lcrypto)
$(LIBKEEL): $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard mgmt-api/libkeel/*.c))
LIBS += $(LIBKEEL)
# Unit tests that call libkeel's client (not only its pure grpc_parse.c) need libcurl too.
$(BUILD)/tests/test_libkeel_calls: LDLIBS += $(LIBKEEL_LIBS)
