/*
 * A small mutation driver for the fuzz targets (each defines LLVMFuzzerTestOneInput, as
 * libFuzzer expects, so `clang -fsanitize=fuzzer` builds them too). It runs every seed
 * file as is, then N mutations of them: bit flips, interesting bytes, truncations,
 * duplicated and deleted chunks. Seeded and replayable: the seed is printed.
 *
 * Usage: fuzz_<target> [-n ITERATIONS] [-s SEED] SEED_FILE...
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static uint64_t rng;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static size_t mutate(uint8_t *p, size_t n, size_t cap)
{
	static const uint8_t interesting[] = {0, 1, 0x7f, 0x80, 0xff, 0xfe, 0x10, 0x40};
	int rounds = 1 + (int)(next() % 4);

	for (int r = 0; r < rounds && n > 0; r++) {
		size_t at = next() % n;
		switch (next() % 6) {
		case 0:
			p[at] ^= (uint8_t)(1u << (next() % 8));
			break;
		case 1:
			p[at] = interesting[next() % sizeof(interesting)];
			break;
		case 2:
			n = at; /* truncate */
			break;
		case 3: { /* duplicate a chunk */
			size_t len = 1 + next() % 64;
			if (at + len <= n && n + len <= cap) {
				memmove(p + at + len, p + at, n - at);
				n += len;
			}
			break;
		}
		case 4: { /* delete a chunk */
			size_t len = 1 + next() % 64;
			if (at + len <= n) {
				memmove(p + at, p + at + len, n - at - len);
				n -= len;
			}
			break;
		}
		default: { /* a random 32-bit value, as lengths and counts are */
			uint32_t v = (uint32_t)next();
			if (at + 4 <= n)
				memcpy(p + at, &v, 4);
			break;
		}
		}
	}
	return n;
}

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *p = NULL;
	long n;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0 || (p = malloc((size_t)n + 1)) == NULL ||
	    fread(p, 1, (size_t)n, f) != (size_t)n) {
		fprintf(stderr, "fuzz: cannot read %s\n", path);
		exit(2);
	}
	fclose(f);
	*len = (size_t)n;
	return p;
}

int main(int argc, char **argv)
{
	long iters = 1000;
	uint64_t seed = (uint64_t)time(NULL);
	int first = 1;

	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	while (first < argc && argv[first][0] == '-') {
		if (strcmp(argv[first], "-n") == 0 && first + 1 < argc)
			iters = atol(argv[first + 1]);
		else if (strcmp(argv[first], "-s") == 0 && first + 1 < argc)
			seed = strtoull(argv[first + 1], NULL, 0);
		else
			break;
		first += 2;
	}
	if (first >= argc) {
		fprintf(stderr, "usage: %s [-n ITERATIONS] [-s SEED] SEED_FILE...\n", argv[0]);
		return 2;
	}
	int nseeds = argc - first;
	uint8_t **seeds = calloc((size_t)nseeds, sizeof(*seeds));
	size_t *lens = calloc((size_t)nseeds, sizeof(*lens));
	size_t maxlen = 0;
	for (int i = 0; i < nseeds; i++) {
		seeds[i] = slurp(argv[first + i], &lens[i]);
		if (lens[i] > maxlen)
			maxlen = lens[i];
		LLVMFuzzerTestOneInput(seeds[i], lens[i]);
	}
	size_t cap = maxlen + 4096;
	uint8_t *buf = malloc(cap);
	rng = seed ? seed : 1;
	printf("fuzz: %s seed %llu, %ld iterations over %d seed(s)\n", argv[0],
	       (unsigned long long)seed, iters, nseeds);
	fflush(stdout);
	for (long it = 0; it < iters; it++) {
		int s = (int)(next() % (uint64_t)nseeds);
		memcpy(buf, seeds[s], lens[s]);
		size_t n = mutate(buf, lens[s], cap);
		LLVMFuzzerTestOneInput(buf, n);
	}
	printf("fuzz: done\n");
	for (int i = 0; i < nseeds; i++)
		free(seeds[i]);
	free(seeds);
	free(lens);
	free(buf);
	return 0;
}
