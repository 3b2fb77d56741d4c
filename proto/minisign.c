/* minisign key and signature parsing, keyrings and verification with OpenSSL
 * 3; see minisign.h for the accepted formats and the error convention. */
#include "minisign.h"

#include <assert.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "util.h"

#define UNTRUSTED_PREFIX "untrusted comment: "
#define TRUSTED_PREFIX   "trusted comment: "
#define ALG_SIZE         2
#define KEY_BLOB_SIZE    (ALG_SIZE + MINISIGN_KEY_ID_SIZE + MINISIGN_PK_SIZE)
#define SIG_BLOB_SIZE    (ALG_SIZE + MINISIGN_KEY_ID_SIZE + MINISIGN_SIG_SIZE)

void minisign_key_id_to_string(const uint8_t key_id[MINISIGN_KEY_ID_SIZE],
                               char out[static MINISIGN_KEY_ID_STRING_MAX])
{
        uint64_t v = 0;
        for (size_t i = MINISIGN_KEY_ID_SIZE; i > 0; i--)
                v = (v << 8) | key_id[i - 1];
        /* minisign prints the id without zero padding; so does lii, so that
         * the id in an error can be found verbatim in the .pub file. */
        snprintf(out, MINISIGN_KEY_ID_STRING_MAX, "%" PRIX64, v);
}

struct line {
        const char *p;
        size_t len;
};

/* Splits text into exactly n lines. "\r\n" counts as a line end (minisign
 * on Windows writes it), the last line may lack its newline, and anything
 * else — fewer lines, more lines, an empty trailing line, a NUL or a lone
 * carriage return — is refused, so that no two different texts parse to
 * the same signature. */
static int split_lines(const char *text, size_t len, struct line *lines, size_t n, char **ret_error)
{
        size_t pos = 0;
        for (size_t i = 0; i < n; i++) {
                if (pos >= len) {
                        if (i == 0)
                                return fail_with(ret_error, -EBADMSG, "file is empty");
                        return fail_with(ret_error, -EBADMSG,
                                         "file ends after line %zu, expected %zu lines", i, n);
                }
                const char *start = text + pos;
                const char *nl = memchr(start, '\n', len - pos);
                size_t l = nl ? (size_t)(nl - start) : len - pos;
                pos += l + (nl ? 1 : 0);
                if (nl && l > 0 && start[l - 1] == '\r')
                        l--;
                if (memchr(start, '\0', l))
                        return fail_with(ret_error, -EBADMSG, "line %zu: contains a NUL byte",
                                         i + 1);
                if (memchr(start, '\r', l))
                        return fail_with(ret_error, -EBADMSG,
                                         "line %zu: contains a carriage return", i + 1);
                lines[i] = (struct line){start, l};
        }
        if (pos < len)
                return fail_with(ret_error, -EBADMSG, "unexpected data after line %zu", n);
        return 0;
}

static int check_prefix(const struct line *l, size_t lineno, const char *prefix, char **ret_error)
{
        size_t n = strlen(prefix);
        if (l->len < n || memcmp(l->p, prefix, n) != 0)
                return fail_with(ret_error, -EBADMSG, "line %zu: does not start with \"%s\"",
                                 lineno, prefix);
        return 0;
}

/* Decodes a line that must be the canonical base64 of exactly size bytes
 * (base64_decode() accepts only the one encoding minisign would write;
 * EVP_DecodeBlock() would skip blanks, count padding into its result and
 * not check the unused bits). */
static int decode_base64_line(const struct line *l, size_t lineno, uint8_t *out, size_t size,
                              char **ret_error)
{
        if (l->len == 0)
                return fail_with(ret_error, -EBADMSG, "line %zu: empty, expected base64", lineno);
        _cleanup_free_ uint8_t *bytes = NULL;
        size_t n, at;
        const char *why;
        if (base64_decode(l->p, l->len, &bytes, &n, &why, &at) < 0) {
                if (l->len % 4 != 0)
                        return fail_with(ret_error, -EBADMSG,
                                         "line %zu: invalid base64: length %zu is not a multiple "
                                         "of 4",
                                         lineno, l->len);
                if (at != SIZE_MAX)
                        return fail_with(ret_error, -EBADMSG,
                                         "line %zu: invalid base64: character %zu is not in the "
                                         "base64 alphabet",
                                         lineno, at + 1);
                return fail_with(ret_error, -EBADMSG, "line %zu: invalid base64: %s", lineno, why);
        }
        if (n != size)
                return fail_with(ret_error, -EBADMSG,
                                 "line %zu: decodes to %zu bytes, expected %zu", lineno, n, size);
        memcpy(out, bytes, size);
        return 0;
}

/* Why the trusted comment is unfit to show, or NULL. It ends up in the JSON
 * status and on terminals, so it must be UTF-8 and may not carry control
 * characters (escape sequences); tab stays allowed because minisign itself
 * separates the fields of its default comment with tabs. */
static const char *comment_text_problem(const char *s, size_t len)
{
        if (utf8_check(s, len, NULL, NULL) < 0)
                return "is not valid UTF-8";
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)s[i];
                /* C0 and DEL are single bytes; in valid UTF-8 the C1 controls
                 * (U+0080..U+009F) are 0xc2 followed by 0x80..0x9f. */
                if ((c < 0x20 && c != '\t') || c == 0x7f ||
                    (c == 0xc2 && (unsigned char)s[i + 1] <= 0x9f))
                        return "contains a control character";
        }
        return NULL;
}

/* Ed25519 points are encoded as the little-endian y coordinate with the
 * sign of x in the top bit. These are the y values of the eight points
 * whose order divides 8 (the identity, one point of order 2, two of order 4
 * and four of order 8), together with the non-canonical encodings y + p
 * that still fit in 255 bits and name one of them (p + 0 and p + 1). With
 * the sign bit left out, every encoding of a small-order point matches one
 * row, which is what libsodium refuses too. Such a key or R carries no
 * secret: with the identity as the key, R = identity and S = 0 "sign"
 * every message, and OpenSSL's verifier does not check for it. */
static const uint8_t small_order_y[][32] = {
    /* 0: the two points of order 4, (+-sqrt(-1), 0) */
    {0},
    /* 1: the identity */
    {0x01},
    /* y and p - y for the y with y^2 = (-1 +- sqrt(1 + d)) / d (the sign
     * for which a root exists): the four points of order 8 */
    {0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4,
     0x89, 0xf2, 0xef, 0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6,
     0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05},
    {0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b,
     0x76, 0x0d, 0x10, 0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39,
     0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a},
    /* p - 1 = -1: the point of order 2, (0, -1) */
    {0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
    /* p, non-canonical 0 */
    {0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
    /* p + 1, non-canonical 1 */
    {0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
};

/* The order of the group, L = 2^252 + 27742317777372353535851937790883648493,
 * little-endian. */
static const uint8_t group_order[32] = {
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
};

/* Keys and signatures are public, so none of these checks needs to run in
 * constant time. */
static bool point_has_small_order(const uint8_t p[32])
{
        for (size_t i = 0; i < ELEMENTSOF(small_order_y); i++)
                if (memcmp(p, small_order_y[i], 31) == 0 && (p[31] & 0x7f) == small_order_y[i][31])
                        return true;
        return false;
}

/* Whether y < p = 2^255 - 19. A larger y names the same point as y - p;
 * OpenSSL reduces it silently, libsodium refuses such a key, and so does lii
 * so that one key has one encoding. */
static bool point_is_canonical(const uint8_t p[32])
{
        if ((p[31] & 0x7f) != 0x7f)
                return true;
        for (size_t i = 30; i > 0; i--)
                if (p[i] != 0xff)
                        return true;
        return p[0] < 0xed;
}

/* Whether s < L. OpenSSL checks this too; it is checked here as well so that
 * the refusal says what is wrong, and so that a signature is never
 * malleable into a second valid one whatever the library does. */
static bool scalar_is_canonical(const uint8_t s[32])
{
        for (size_t i = 32; i > 0; i--)
                if (s[i - 1] != group_order[i - 1])
                        return s[i - 1] < group_order[i - 1];
        return false;
}

/* Why pk cannot be trusted, or NULL. */
static const char *public_key_problem(const uint8_t pk[MINISIGN_PK_SIZE])
{
        if (point_has_small_order(pk))
                return "is a weak key (small order)";
        if (!point_is_canonical(pk))
                return "is not canonically encoded";
        return NULL;
}

/* Why a signature (R || S) can never be valid, or NULL. libsodium refuses
 * both before it computes anything: an R of small order lets a signer make
 * signatures that hold under several messages or keys, and an S >= L makes
 * signatures malleable. */
static const char *signature_problem(const uint8_t sig[MINISIGN_SIG_SIZE])
{
        if (point_has_small_order(sig))
                return "R is a point of small order";
        if (!scalar_is_canonical(sig + 32))
                return "S is not canonical (not below the group order)";
        return NULL;
}

static void format_alg(const uint8_t alg[ALG_SIZE], char out[static 16])
{
        if (alg[0] >= 0x21 && alg[0] < 0x7f && alg[1] >= 0x21 && alg[1] < 0x7f)
                snprintf(out, 16, "\"%c%c\"", alg[0], alg[1]);
        else
                snprintf(out, 16, "0x%02x%02x", alg[0], alg[1]);
}

int minisign_key_parse(const char *text, size_t len, struct minisign_key *ret, char **ret_error)
{
        struct line lines[2];
        uint8_t blob[KEY_BLOB_SIZE];
        int r;

        if (len > MINISIGN_KEY_FILE_MAX)
                return fail_with(ret_error, -EBADMSG, "larger than %d bytes",
                                 MINISIGN_KEY_FILE_MAX);
        r = split_lines(text, len, lines, ELEMENTSOF(lines), ret_error);
        if (r < 0)
                return r;
        r = check_prefix(&lines[0], 1, UNTRUSTED_PREFIX, ret_error);
        if (r < 0)
                return r;
        r = decode_base64_line(&lines[1], 2, blob, sizeof(blob), ret_error);
        if (r < 0)
                return r;
        if (memcmp(blob, "Ed", ALG_SIZE) != 0) {
                char alg[16];
                format_alg(blob, alg);
                return fail_with(ret_error, -EBADMSG, "line 2: unknown key algorithm %s", alg);
        }

        struct minisign_key k = {.path = NULL};
        memcpy(k.key_id, blob + ALG_SIZE, MINISIGN_KEY_ID_SIZE);
        memcpy(k.pk, blob + ALG_SIZE + MINISIGN_KEY_ID_SIZE, MINISIGN_PK_SIZE);
        minisign_key_id_to_string(k.key_id, k.key_id_string);
        const char *problem = public_key_problem(k.pk);
        if (problem)
                return fail_with(ret_error, -EKEYREJECTED, "public key %s %s", k.key_id_string,
                                 problem);
        *ret = k;
        return 0;
}

struct minisign_keyring *minisign_keyring_new(void)
{
        return xcalloc(1, sizeof(struct minisign_keyring));
}

const struct minisign_key *minisign_keyring_find(const struct minisign_keyring *k,
                                                 const uint8_t key_id[MINISIGN_KEY_ID_SIZE])
{
        for (size_t i = 0; k && i < k->n; i++)
                if (memcmp(k->keys[i].key_id, key_id, MINISIGN_KEY_ID_SIZE) == 0)
                        return &k->keys[i];
        return NULL;
}

int minisign_keyring_add(struct minisign_keyring *k, const char *text, size_t len,
                         const char *origin, char **ret_error)
{
        _cleanup_free_ char *error = NULL;
        struct minisign_key key;
        int r;

        r = minisign_key_parse(text, len, &key, &error);
        if (r < 0)
                return fail_with(ret_error, r, "%s: %s", origin, error);

        const struct minisign_key *old = minisign_keyring_find(k, key.key_id);
        if (old) {
                if (memcmp(old->pk, key.pk, MINISIGN_PK_SIZE) == 0)
                        return 0;
                return fail_with(ret_error, -EEXIST,
                                 "%s: key id %s is also used by a different key in %s", origin,
                                 key.key_id_string, old->path ? old->path : "the keyring");
        }
        if (k->n >= MINISIGN_KEYRING_MAX)
                return fail_with(ret_error, -E2BIG, "%s: more than %d keys", origin,
                                 MINISIGN_KEYRING_MAX);

        struct minisign_key *keys = reallocarray(k->keys, k->n + 1, sizeof(*keys));
        if (!keys)
                abort(); /* Like xcalloc(): out of memory is not survived half-way. */
        k->keys = keys;
        key.path = xstrdup(origin);
        k->keys[k->n++] = key;
        return 0;
}

struct minisign_keyring *minisign_keyring_free(struct minisign_keyring *k)
{
        if (!k)
                return NULL;
        for (size_t i = 0; i < k->n; i++)
                free(k->keys[i].path);
        free(k->keys);
        free(k);
        return NULL;
}

static bool is_key_file_name(const char *name)
{
        size_t n = strlen(name);
        return name[0] != '.' && n > 4 && strcmp(name + n - 4, ".pub") == 0;
}

/* Reads a whole key file opened relative to the directory, refusing what
 * cannot be a key: O_NONBLOCK keeps a FIFO planted in the directory from
 * hanging the daemon, and the size is checked on what was actually read. */
static int read_key_file(int dir_fd, const char *name, const char *path, char *buf, size_t *ret_len,
                         char **ret_error)
{
        _cleanup_close_ int fd = -1;
        struct stat st;
        size_t len = 0;

        fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return fail_with(ret_error, -errno, "%s: %m", path);
        if (fstat(fd, &st) < 0)
                return fail_with(ret_error, -errno, "%s: %m", path);
        if (!S_ISREG(st.st_mode))
                return fail_with(ret_error, -EBADMSG, "%s: not a regular file", path);
        for (;;) {
                ssize_t n = read(fd, buf + len, MINISIGN_KEY_FILE_MAX + 1 - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return fail_with(ret_error, -errno, "%s: %m", path);
                if (n == 0)
                        break;
                len += (size_t)n;
                if (len > MINISIGN_KEY_FILE_MAX)
                        return fail_with(ret_error, -EBADMSG, "%s: larger than %d bytes", path,
                                         MINISIGN_KEY_FILE_MAX);
        }
        *ret_len = len;
        return 0;
}

int minisign_keyring_load_dir(const char *dir, struct minisign_keyring **ret, char **ret_error)
{
        _cleanup_(minisign_keyring_freep) struct minisign_keyring *k = NULL;
        _cleanup_(closedirp) DIR *d = NULL;
        _cleanup_strv_free_ char **names = NULL;
        size_t n_names = 0;
        int r;

        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return fail_with(ret_error, -errno, "%s: %m", dir);
        d = fdopendir(fd);
        if (!d) {
                r = -errno;
                close(fd);
                errno = -r;
                return fail_with(ret_error, r, "%s: %m", dir);
        }

        names = xcalloc(MINISIGN_KEYRING_MAX + 1, sizeof(char *));
        for (;;) {
                errno = 0;
                struct dirent *de = readdir(d);
                if (!de) {
                        if (errno != 0)
                                return fail_with(ret_error, -errno, "%s: %m", dir);
                        break;
                }
                if (!is_key_file_name(de->d_name))
                        continue;
                if (n_names >= MINISIGN_KEYRING_MAX)
                        return fail_with(ret_error, -E2BIG, "%s: more than %d key files", dir,
                                         MINISIGN_KEYRING_MAX);
                names[n_names++] = xstrdup(de->d_name);
        }
        /* Name order makes which file an error names, and which of two
         * files with the same key is remembered, independent of the file
         * system. */
        qsort(names, n_names, sizeof(char *), strptr_compare);

        k = minisign_keyring_new();
        size_t dir_len = strlen(dir);
        bool slash = dir_len > 0 && dir[dir_len - 1] == '/';
        for (size_t i = 0; i < n_names; i++) {
                _cleanup_free_ char *path = xasprintf("%s%s%s", dir, slash ? "" : "/", names[i]);
                char buf[MINISIGN_KEY_FILE_MAX + 1];
                size_t len = 0;

                r = read_key_file(dirfd(d), names[i], path, buf, &len, ret_error);
                if (r < 0)
                        return r;
                r = minisign_keyring_add(k, buf, len, path, ret_error);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(k);
        return 0;
}

int minisign_sig_parse(const char *text, size_t len, struct minisign_sig **ret, char **ret_error)
{
        struct line lines[4];
        uint8_t blob[SIG_BLOB_SIZE];
        uint8_t global_sig[MINISIGN_SIG_SIZE];
        int r;

        if (len > MINISIGN_SIG_FILE_MAX)
                return fail_with(ret_error, -EBADMSG, "larger than %d bytes",
                                 MINISIGN_SIG_FILE_MAX);
        r = split_lines(text, len, lines, ELEMENTSOF(lines), ret_error);
        if (r < 0)
                return r;
        r = check_prefix(&lines[0], 1, UNTRUSTED_PREFIX, ret_error);
        if (r < 0)
                return r;
        r = decode_base64_line(&lines[1], 2, blob, sizeof(blob), ret_error);
        if (r < 0)
                return r;
        bool prehashed;
        if (memcmp(blob, "ED", ALG_SIZE) == 0)
                prehashed = true;
        else if (memcmp(blob, "Ed", ALG_SIZE) == 0)
                prehashed = false;
        else {
                char alg[16];
                format_alg(blob, alg);
                return fail_with(ret_error, -EBADMSG, "line 2: unknown signature algorithm %s",
                                 alg);
        }
        r = check_prefix(&lines[2], 3, TRUSTED_PREFIX, ret_error);
        if (r < 0)
                return r;
        const char *comment = lines[2].p + strlen(TRUSTED_PREFIX);
        size_t comment_len = lines[2].len - strlen(TRUSTED_PREFIX);
        const char *problem = comment_text_problem(comment, comment_len);
        if (problem)
                return fail_with(ret_error, -EBADMSG, "line 3: trusted comment %s", problem);
        r = decode_base64_line(&lines[3], 4, global_sig, sizeof(global_sig), ret_error);
        if (r < 0)
                return r;

        struct minisign_sig *s = xcalloc(1, sizeof(*s));
        s->prehashed = prehashed;
        memcpy(s->key_id, blob + ALG_SIZE, MINISIGN_KEY_ID_SIZE);
        minisign_key_id_to_string(s->key_id, s->key_id_string);
        memcpy(s->sig, blob + ALG_SIZE + MINISIGN_KEY_ID_SIZE, MINISIGN_SIG_SIZE);
        s->trusted_comment = xcalloc(1, comment_len + 1);
        memcpy(s->trusted_comment, comment, comment_len);
        memcpy(s->global_sig, global_sig, MINISIGN_SIG_SIZE);
        *ret = s;
        return 0;
}

struct minisign_sig *minisign_sig_free(struct minisign_sig *s)
{
        if (!s)
                return NULL;
        free(s->trusted_comment);
        free(s);
        return NULL;
}

struct minisign_hasher {
        EVP_MD_CTX *ctx;
        bool finished;
};

int minisign_hasher_new(struct minisign_hasher **ret)
{
        _cleanup_(evp_md_unrefp) EVP_MD *md = NULL;
        _cleanup_(evp_md_ctx_unrefp) EVP_MD_CTX *ctx = NULL;

        md = EVP_MD_fetch(NULL, "BLAKE2B-512", NULL);
        if (!md) {
                ERR_clear_error();
                return -EOPNOTSUPP;
        }
        ctx = EVP_MD_CTX_new();
        if (!ctx)
                return -ENOMEM;
        /* The context keeps its own reference to md. */
        if (EVP_DigestInit_ex(ctx, md, NULL) != 1) {
                ERR_clear_error();
                return -EIO;
        }
        struct minisign_hasher *h = xcalloc(1, sizeof(*h));
        h->ctx = TAKE_PTR(ctx);
        *ret = h;
        return 0;
}

int minisign_hasher_update(struct minisign_hasher *h, const void *data, size_t len)
{
        assert(!h->finished);
        if (len == 0)
                return 0;
        if (EVP_DigestUpdate(h->ctx, data, len) != 1) {
                ERR_clear_error();
                return -EIO;
        }
        return 0;
}

int minisign_hasher_final(struct minisign_hasher *h, uint8_t ret_hash[MINISIGN_HASH_SIZE])
{
        uint8_t hash[EVP_MAX_MD_SIZE];
        unsigned n = 0;

        assert(!h->finished);
        h->finished = true;
        if (EVP_DigestFinal_ex(h->ctx, hash, &n) != 1 || n != MINISIGN_HASH_SIZE) {
                ERR_clear_error();
                return -EIO;
        }
        memcpy(ret_hash, hash, MINISIGN_HASH_SIZE);
        return 0;
}

struct minisign_hasher *minisign_hasher_free(struct minisign_hasher *h)
{
        if (!h)
                return NULL;
        EVP_MD_CTX_free(h->ctx);
        free(h);
        return NULL;
}

static int blake2b512(const void *data, size_t len, uint8_t ret_hash[MINISIGN_HASH_SIZE])
{
        _cleanup_(minisign_hasher_freep) struct minisign_hasher *h = NULL;
        int r;

        r = minisign_hasher_new(&h);
        if (r < 0)
                return r;
        r = minisign_hasher_update(h, data, len);
        if (r < 0)
                return r;
        return minisign_hasher_final(h, ret_hash);
}

/* Returns 0 for a valid signature, -EBADMSG for an invalid one and -EIO when
 * OpenSSL could not do the check at all. OpenSSL's error queue is emptied
 * either way: a rejected signature is an answer, not an error to report
 * later from some unrelated call on this thread. */
static int ed25519_verify(const uint8_t pk[MINISIGN_PK_SIZE], const uint8_t sig[MINISIGN_SIG_SIZE],
                          const void *msg, size_t len)
{
        _cleanup_(evp_pkey_unrefp) EVP_PKEY *pkey = NULL;
        _cleanup_(evp_md_ctx_unrefp) EVP_MD_CTX *ctx = NULL;
        int r;

        pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pk, MINISIGN_PK_SIZE);
        ctx = EVP_MD_CTX_new();
        if (!pkey || !ctx || EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) != 1) {
                ERR_clear_error();
                return -EIO;
        }
        r = EVP_DigestVerify(ctx, sig, MINISIGN_SIG_SIZE, len > 0 ? msg : (const void *)"", len);
        ERR_clear_error();
        if (r == 1)
                return 0;
        return r == 0 ? -EBADMSG : -EIO;
}

/* msg is the BLAKE2b-512 of the file for "ED" and the file itself for "Ed". */
static int verify_message(const struct minisign_keyring *k, const struct minisign_sig *sig,
                          const void *msg, size_t len, const struct minisign_key **ret_key,
                          char **ret_error)
{
        const struct minisign_key *key;
        int r;

        key = minisign_keyring_find(k, sig->key_id);
        if (!key)
                return fail_with(ret_error, -ENOKEY, "signature key id %s is not trusted",
                                 sig->key_id_string);

        /* A keyring is filled by minisign_keyring_add(), which refuses such
         * keys; checked again here because the keyring is a plain struct
         * that a caller may fill by other means. */
        const char *problem = public_key_problem(key->pk);
        if (problem)
                return fail_with(ret_error, -EKEYREJECTED, "public key %s %s", key->key_id_string,
                                 problem);

        problem = signature_problem(sig->sig);
        if (problem)
                return fail_with(ret_error, -EBADMSG, "signature: %s", problem);
        r = ed25519_verify(key->pk, sig->sig, msg, len);
        if (r == -EBADMSG)
                return fail_with(ret_error, r, "signature does not match the file");
        if (r < 0)
                return fail_with(ret_error, r, "OpenSSL could not check the signature");

        /* The global signature covers the file signature followed by the
         * comment text, tying the comment to this very signature. */
        size_t comment_len = strlen(sig->trusted_comment);
        _cleanup_free_ uint8_t *signed_comment = xcalloc(1, MINISIGN_SIG_SIZE + comment_len);
        memcpy(signed_comment, sig->sig, MINISIGN_SIG_SIZE);
        memcpy(signed_comment + MINISIGN_SIG_SIZE, sig->trusted_comment, comment_len);
        problem = signature_problem(sig->global_sig);
        if (problem)
                return fail_with(ret_error, -EBADMSG, "trusted comment signature: %s", problem);
        r = ed25519_verify(key->pk, sig->global_sig, signed_comment,
                           MINISIGN_SIG_SIZE + comment_len);
        if (r == -EBADMSG)
                return fail_with(ret_error, r, "trusted comment does not match its signature");
        if (r < 0)
                return fail_with(ret_error, r, "OpenSSL could not check the comment signature");

        if (ret_key)
                *ret_key = key;
        return 0;
}

static int refuse_legacy(char **ret_error)
{
        return fail_with(ret_error, -EPROTONOSUPPORT,
                         "legacy (non-prehashed) signatures are refused");
}

int minisign_verify_prehashed(const struct minisign_keyring *k, const struct minisign_sig *sig,
                              const uint8_t hash[MINISIGN_HASH_SIZE], unsigned flags,
                              const struct minisign_key **ret_key, char **ret_error)
{
        if (!sig->prehashed) {
                if (!(flags & MINISIGN_ALLOW_LEGACY))
                        return refuse_legacy(ret_error);
                return fail_with(ret_error, -EOPNOTSUPP,
                                 "a legacy signature can only be checked against the whole file");
        }
        return verify_message(k, sig, hash, MINISIGN_HASH_SIZE, ret_key, ret_error);
}

int minisign_verify_buffer(const struct minisign_keyring *k, const struct minisign_sig *sig,
                           const void *data, size_t len, unsigned flags,
                           const struct minisign_key **ret_key, char **ret_error)
{
        uint8_t hash[MINISIGN_HASH_SIZE];
        int r;

        if (!sig->prehashed) {
                if (!(flags & MINISIGN_ALLOW_LEGACY))
                        return refuse_legacy(ret_error);
                return verify_message(k, sig, data, len, ret_key, ret_error);
        }
        r = blake2b512(data, len, hash);
        if (r < 0)
                return fail_with(ret_error, r, "could not compute BLAKE2b-512 of the file");
        return verify_message(k, sig, hash, sizeof(hash), ret_key, ret_error);
}

int minisign_keyring_load_path(const char *path, struct minisign_keyring **ret, char **ret_error)
{
        struct stat st;
        if (stat(path, &st) < 0) {
                *ret_error = xasprintf("%s: %s", path, strerror(errno));
                return -errno;
        }
        if (S_ISDIR(st.st_mode))
                return minisign_keyring_load_dir(path, ret, ret_error);
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = read_file_capped(path, MINISIGN_KEY_FILE_MAX, &text, &len);
        if (r < 0) {
                *ret_error =
                    xasprintf("%s: %s", path,
                              r == -EFBIG ? "too large for a key file" : read_file_strerror(r));
                return r;
        }
        _cleanup_(minisign_keyring_freep) struct minisign_keyring *k = minisign_keyring_new();
        r = minisign_keyring_add(k, text, len, path, ret_error);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(k);
        return 0;
}
