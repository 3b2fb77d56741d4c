/* SHA-256 in hex with OpenSSL; see sha256.h. */
#include "sha256.h"

#include <errno.h>
#include <openssl/evp.h>

#include "util.h"

int sha256_hex_of(const void *data, size_t len, char ret[static SHA256_HEX_LEN + 1])
{
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned n = 0;

        if (!EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) || n != SHA256_HEX_LEN / 2)
                return -EIO;
        hex_encode(md, n, ret);
        return 0;
}
