# proto/ — .proto files compiled by protoc-c into $(BUILD)/gen (never committed).
PROTOS   := $(wildcard proto/*.proto)
PROTO_C  := $(PROTOS:proto/%.proto=$(BUILD)/gen/%.pb-c.c)
PROTO_H  := $(PROTO_C:.c=.h)
LIBPROTO := $(BUILD)/lib/libproto.a
PROTO_LIBS := -lprotobuf-c

$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: proto/%.proto
	@mkdir -p $(BUILD)/gen
	@$(if $(Q),echo "  PROTOC  $<")
	$(Q)protoc-c --c_out=$(BUILD)/gen -Iproto $<

# Generated code is compiled without our warning set.
$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c $(PROTO_H)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) -std=gnu11 -O2 -g -fPIC -I$(BUILD)/gen $(SANFLAGS) -c $< -o $@

$(LIBPROTO): $(PROTO_C:$(BUILD)/gen/%.c=$(BUILD)/obj/gen/%.o)
LIBS += $(LIBPROTO)
