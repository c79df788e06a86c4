# lib/ — base utilities with no daemon header: log, errors, heap, buffers, lists, time,
# checksums, and length-prefixed framing over Unix sockets.
LIBKB := $(BUILD)/lib/libkb.a
$(LIBKB): $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard lib/*.c))
LIBS += $(LIBKB)
