/*
 * libkeel's pure pieces of the gRPC wire format (no libcurl, no I/O), so they can be unit
 * tested: the 5-byte message prefix, the unary response body, response header and trailer
 * lines, grpc-message's percent-decoding, and certificate thumbprints. Internal to libkeel
 * (kl__ prefix); the public API is keel_client.h.
 *
 * Wire format (docs/hostd.md "Framing"): a body is length-prefixed messages, each a 1-byte
 * flag (0 plain, 1 compressed) and a 4-byte big-endian length, then the protobuf bytes.
 * The status travels as `grpc-status` (decimal) and `grpc-message` (percent-encoded: bytes
 * outside 0x20..0x7e and '%' as %XX) in the trailers, or in the headers of a trailers-only
 * response.
 */
#ifndef KL_GRPC_PARSE_H
#define KL_GRPC_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KL__PREFIX_LEN 5
#define KL__MSG_MAX    (64u << 20) /* the largest response message accepted: 64 MiB */

/* Writes the prefix of an uncompressed message of len bytes into out. */
void kl__grpc_prefix(uint8_t out[KL__PREFIX_LEN], uint32_t len);

/*
 * The one message of a unary response body buf[0..len). 0 and *msg and *msg_len (pointing
 * into buf); or -ENODATA (empty body), -EMSGSIZE (the prefix announces more than max),
 * -ENOTSUP (compressed flag), -EBADMSG (any other flag, a body that ends inside the prefix
 * or the message, or bytes after the first message), with a sentence in err.
 */
int kl__grpc_body_parse(const uint8_t *buf, size_t len, size_t max, const uint8_t **msg,
			size_t *msg_len, char *err, size_t err_size);

/* The length announced by a prefix that is complete in buf[0..len), for early limit
 * checks: 0 and *announced, or -EAGAIN while fewer than 5 bytes have arrived. */
int kl__grpc_body_announced(const uint8_t *buf, size_t len, uint32_t *announced);

/*
 * The next message of a stream body whose first len bytes are in buf (the bytes of the
 * messages already taken removed): 0 with *msg and *msg_len (pointing into buf) and
 * *used, the bytes it takes with its prefix; -EAGAIN while it has not fully arrived;
 * -EMSGSIZE (announces more than max), -ENOTSUP (compressed flag), -EBADMSG (any other
 * flag) as soon as the prefix shows it.
 */
int kl__grpc_stream_next(const uint8_t *buf, size_t len, size_t max, const uint8_t **msg,
			 size_t *msg_len, size_t *used);

/*
 * Percent-decodes in[0..n) into out (NUL-terminated, cut to out_size - 1 bytes). A '%' not
 * followed by two hex digits is kept as it is (the gRPC spec's advice). Returns the length
 * written.
 */
size_t kl__grpc_percent_decode(const char *in, size_t n, char *out, size_t out_size);

/* What the header callback learned about one response. */
struct kl__grpc_resp {
	long http_status;	 /* from the status line, 0 until seen */
	bool grpc_content;	 /* content-type application/grpc[+proto][;...] */
	bool have_status;	 /* a grpc-status line was seen */
	int grpc_status;	 /* its value, or -1 if it was not a number in 0..99 */
	char grpc_message[1024]; /* grpc-message, percent-decoded */
};

void kl__grpc_resp_init(struct kl__grpc_resp *r);
/*
 * Feeds one header or trailer line as libcurl hands it to a header callback ("HTTP/2 200",
 * "grpc-status: 0", CR LF included or not). A new status line starts a new response (so
 * an informational 1xx answer does not leak into the final one). Names are matched
 * case-insensitively; unknown headers are ignored.
 */
void kl__grpc_resp_line(struct kl__grpc_resp *r, const char *line, size_t len);

/* The gRPC status a non-200 HTTP status maps to (the gRPC spec's HTTP-to-gRPC table). */
int kl__grpc_status_from_http(long http_status);

#define KL__SHA256_LEN	   32
#define KL__THUMBPRINT_STR (KL__SHA256_LEN * 3) /* "AB:CD:...:EF" + NUL */

/* Parses a SHA-256 thumbprint: 64 hex digits, upper or lower case, with or without ':'
 * between the pairs (all pairs, or none). 0 or -EINVAL. */
int kl__thumbprint_parse(const char *s, uint8_t out[KL__SHA256_LEN]);
/* Formats a digest as ESXi and openssl print it: upper-case pairs joined by ':'. */
void kl__thumbprint_format(const uint8_t d[KL__SHA256_LEN], char out[KL__THUMBPRINT_STR]);

#endif
