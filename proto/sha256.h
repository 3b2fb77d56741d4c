/* SHA-256 digests the way lii writes them everywhere (artifact and spec
 * hashes, document ids): 64 lower-case hex digits. */
#pragma once

#include <stddef.h>

#define SHA256_HEX_LEN 64

/* The SHA-256 of data[0..len), as SHA256_HEX_LEN hex digits and a NUL.
 * Returns 0, or -EIO when OpenSSL fails. */
int sha256_hex_of(const void *data, size_t len, char ret[static SHA256_HEX_LEN + 1]);
