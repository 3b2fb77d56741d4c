/* Verification of minisign signatures (public keys, signature files, the
 * prehashed "ED" and legacy "Ed" algorithms) with OpenSSL 3, and keyrings
 * loaded from a directory of *.pub files. Nothing here logs or touches
 * global state; every function may run on the libuv thread pool.
 *
 * Formats accepted, strictly:
 *   key file:       "untrusted comment: <text>" LF base64("Ed" keyid[8] pk[32])
 *   signature file: "untrusted comment: <text>" LF base64(alg[2] keyid[8] sig[64]) LF
 *                   "trusted comment: <text>" LF base64(global_sig[64])
 * with an optional final LF. "\r\n" is accepted as a line ending wherever
 * "\n" is, because minisign writes CRLF files on Windows and reads them
 * everywhere; a lone "\r", a NUL byte, an empty trailing line or anything
 * after the last line is refused. Base64 is the standard alphabet with exact
 * '=' padding, no whitespace and zero unused bits. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MINISIGN_KEY_ID_SIZE       8
#define MINISIGN_PK_SIZE           32
#define MINISIGN_SIG_SIZE          64
#define MINISIGN_HASH_SIZE         64 /* BLAKE2b-512 */
#define MINISIGN_KEY_ID_STRING_MAX 17

#define MINISIGN_KEY_FILE_MAX 4096 /* bytes of one *.pub file */
#define MINISIGN_SIG_FILE_MAX 4096 /* bytes of one signature file */
#define MINISIGN_KEYRING_MAX  256  /* keys in one keyring */

/* Verification flags. Legacy "Ed" signatures sign the raw file, which forces
 * a verifier to hold the whole file in memory; minisign itself produces the
 * prehashed form by default since 0.11 and advises new verifiers to require
 * it, so the legacy form is refused unless this flag is given. */
#define MINISIGN_ALLOW_LEGACY (1u << 0)

struct minisign_key {
        uint8_t key_id[MINISIGN_KEY_ID_SIZE];
        uint8_t pk[MINISIGN_PK_SIZE];
        char key_id_string[MINISIGN_KEY_ID_STRING_MAX]; /* as minisign prints it */
        char *path; /* the file it came from; NULL when parsed from text */
};

struct minisign_keyring {
        struct minisign_key *keys;
        size_t n;
};

struct minisign_sig {
        bool prehashed; /* "ED": Ed25519 over BLAKE2b-512(file); else legacy "Ed" */
        uint8_t key_id[MINISIGN_KEY_ID_SIZE];
        char key_id_string[MINISIGN_KEY_ID_STRING_MAX];
        uint8_t sig[MINISIGN_SIG_SIZE];
        /* Without the "trusted comment: " prefix and the line ending. Valid
         * UTF-8 without control characters other than tab. Only to be shown
         * as trusted after minisign_verify_*() returned 0 for this sig. */
        char *trusted_comment;
        uint8_t global_sig[MINISIGN_SIG_SIZE];
};

/* Formats a key id the way minisign prints it: 16 upper-case hex digits of
 * the 8 bytes read as a little-endian integer. */
void minisign_key_id_to_string(const uint8_t key_id[MINISIGN_KEY_ID_SIZE],
                               char out[static MINISIGN_KEY_ID_STRING_MAX]);

/* Parses the text of a public key file. On failure returns -EBADMSG and sets
 * *ret_error to a malloc'ed reason ("line 2: invalid base64: ..."); on
 * success fills *ret (path NULL) and leaves *ret_error untouched. A key that
 * parses but cannot be trusted, as libsodium (and so minisign) would refuse
 * it, is -EKEYREJECTED: a point of small order, under which anyone can make
 * signatures ("public key 0123456789ABCDEF is a weak key (small order)"),
 * or a non-canonical encoding ("... is not canonically encoded"). */
int minisign_key_parse(const char *text, size_t len, struct minisign_key *ret, char **ret_error);

/* An empty keyring; aborts on allocation failure like xcalloc(). */
struct minisign_keyring *minisign_keyring_new(void);
/* Parses a key and adds it, remembering origin as its path. Errors are
 * prefixed with origin. A key whose id is already present with the same key
 * is ignored; with a different key it is an error (-EEXIST), since a
 * signature could then not name its key unambiguously. More than
 * MINISIGN_KEYRING_MAX keys is -E2BIG. */
int minisign_keyring_add(struct minisign_keyring *k, const char *text, size_t len,
                         const char *origin, char **ret_error);
/* Loads every "*.pub" file of dir (not hidden ones), in name order. A missing
 * or unreadable dir is an error ("DIR: No such file or directory"); so is
 * any key file that does not parse, is not a regular file or is larger than
 * MINISIGN_KEY_FILE_MAX, with a message naming the file. An empty dir gives
 * an empty keyring: whether that is acceptable is for the caller to decide. */
int minisign_keyring_load_dir(const char *dir, struct minisign_keyring **ret, char **ret_error);
/* A key file, or a folder of them as minisign_keyring_load_dir() reads
 * one (what `liictl verify --key` and `liictl publish --key` take). */
int minisign_keyring_load_path(const char *path, struct minisign_keyring **ret, char **ret_error);
const struct minisign_key *minisign_keyring_find(const struct minisign_keyring *k,
                                                 const uint8_t key_id[MINISIGN_KEY_ID_SIZE]);
struct minisign_keyring *minisign_keyring_free(struct minisign_keyring *k);
static inline void minisign_keyring_freep(struct minisign_keyring **k)
{
        minisign_keyring_free(*k);
}

/* Parses the text of a signature file (at most MINISIGN_SIG_FILE_MAX bytes).
 * On failure returns -EBADMSG with a message naming the line and the reason
 * ("line 3: does not start with \"trusted comment: \""). */
int minisign_sig_parse(const char *text, size_t len, struct minisign_sig **ret, char **ret_error);
struct minisign_sig *minisign_sig_free(struct minisign_sig *s);
static inline void minisign_sig_freep(struct minisign_sig **s)
{
        minisign_sig_free(*s);
}

/* BLAKE2b-512 computed while the bytes stream in, so that a file is read
 * once and the bytes that were verified are the bytes that get used.
 * new() returns -ENOMEM, or -EOPNOTSUPP when OpenSSL lacks BLAKE2b;
 * update() and final() return -EIO if OpenSSL fails. final() may be called
 * once; the hasher is then only good for free(). */
struct minisign_hasher;
int minisign_hasher_new(struct minisign_hasher **ret);
int minisign_hasher_update(struct minisign_hasher *h, const void *data, size_t len);
int minisign_hasher_final(struct minisign_hasher *h, uint8_t ret_hash[MINISIGN_HASH_SIZE]);
struct minisign_hasher *minisign_hasher_free(struct minisign_hasher *h);
static inline void minisign_hasher_freep(struct minisign_hasher **h)
{
        minisign_hasher_free(*h);
}

/* Verifies sig against a file, checking in this order:
 *   legacy "Ed" and no MINISIGN_ALLOW_LEGACY: -EPROTONOSUPPORT,
 *     "legacy (non-prehashed) signatures are refused";
 *   key id not in the keyring: -ENOKEY,
 *     "signature key id 0123456789ABCDEF is not trusted";
 *   the key is one minisign_key_parse() refuses: -EKEYREJECTED, with its
 *     message;
 *   file signature with an R of small order or S >= L (libsodium refuses
 *     both before computing anything): -EBADMSG,
 *     "signature: R is a point of small order",
 *     "signature: S is not canonical (not below the group order)";
 *   file signature wrong: -EBADMSG, "signature does not match the file";
 *   the same two for the global signature: -EBADMSG,
 *     "trusted comment signature: R is a point of small order", ...;
 *   global signature wrong: -EBADMSG,
 *     "trusted comment does not match its signature";
 *   OpenSSL failure: -EIO or -ENOMEM.
 * On success returns 0, sets *ret_key (if not NULL) to the key in k that
 * verified, and sig->trusted_comment is then authentic. On failure sets
 * *ret_error to a malloc'ed message.
 *
 * _prehashed() takes the BLAKE2b-512 of the file from a minisign_hasher. It
 * cannot check a legacy signature, which signs the raw bytes: with
 * MINISIGN_ALLOW_LEGACY such a sig gives -EOPNOTSUPP ("a legacy signature
 * can only be checked against the whole file") and the caller must use _buffer() instead.
 * _buffer() takes the whole file and handles both algorithms. */
int minisign_verify_prehashed(const struct minisign_keyring *k, const struct minisign_sig *sig,
                              const uint8_t hash[MINISIGN_HASH_SIZE], unsigned flags,
                              const struct minisign_key **ret_key, char **ret_error);
int minisign_verify_buffer(const struct minisign_keyring *k, const struct minisign_sig *sig,
                           const void *data, size_t len, unsigned flags,
                           const struct minisign_key **ret_key, char **ret_error);
