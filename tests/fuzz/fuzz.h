/*
 * fuzz.h - what the libFuzzer harnesses in tests/fuzz share: the entry
 * point's prototype and FUZZ_CHECK(), a contract check that aborts, so
 * that libFuzzer records the input as a crash like any sanitizer report.
 */
#ifndef VALET_FUZZ_H
#define VALET_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

__attribute__((noreturn)) static inline void fuzz_fail(const char *file, int line,
						       const char *what)
{
	fprintf(stderr, "%s:%d: contract broken: %s\n", file, line, what);
	abort();
}

/* Reads all of s (NULL is fine), so that ASan checks that it is a C string
 * where it should be; the empty asm keeps the read from being optimized out. */
static inline void fuzz_touch(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	__asm__ volatile("" : : "r"(n) : "memory");
}

#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond))                                                                       \
			fuzz_fail(__FILE__, __LINE__, #cond);                                      \
	} while (0)

#endif
