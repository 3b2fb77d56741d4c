/* minisign public keys and signature files, as liid reads them from its
 * key folders and next to documents and artifacts: minisign_key_parse()
 * and minisign_keyring_add() on the input as a key, minisign_sig_parse()
 * on the input as a signature, and a signature that parses verified with
 * a fixed key (made with the real minisign, its secret key thrown away)
 * over a fixed message, from the whole message and from its BLAKE2b-512,
 * with and without legacy signatures allowed. A key that parses verifies
 * the fixed key's signatures, which it must not unless it is that key.
 *
 * Promises checked: errors are clean one-line messages; nothing but the
 * fixed key's own signatures of the message verify (a forgery or a
 * malleated signature that verifies aborts), and what verified is that
 * signature byte for byte, its trusted comment included. */
#include <string.h>

#include "fuzz.h"
#include "minisign.h"
#include "util.h"

static const char key_text[] = "untrusted comment: minisign public key 391C2F76703C9B0\n"
                               "RWSwyQNn98KRA4FMFtfey3V7ZjHxeDUjG0aVWOjF3idWJ65j1QkWR4l4\n";
static const char message[] = "lii fuzz: the message every seed signature signs\n";
/* The message's signatures, prehashed and legacy. */
static const char sig_texts[][512] = {
    "untrusted comment: signature from minisign secret key\n"
    "RUSwyQNn98KRA7BKD2kkKkEtXwEnOOAjgSc3ueHuzvpcdMEAbUAmvcRUzxUeapChxdDdhDqnx5EbZhbwBDYl9zX59ZBSSW"
    "4u"
    "CAE=\n"
    "trusted comment: lii fuzz seed\n"
    "AIIosrYKmU+M2StwQ/3GtSVmLjWhh+vnr+LY8drHiOgxjH2R2keMsHIOVfibrWel9+HeRtHPUuI4Nd3LYGIVCg==\n",
    "untrusted comment: signature from minisign secret key\n"
    "RWSwyQNn98KRAyiLzIiL1hsqbM6m9Qyvfq9t6ZmI4yaHt3tHdWYOC8ceQMfiDpXyHCR5ZCk/7NlNe7cfG9aOX7Kz7Lr2"
    "v8sAlA0=\n"
    "trusted comment: lii fuzz legacy seed\n"
    "r9dx+jYa32voLubOgv1cvM3KiSS6bsaq03ErSbeCQJICFxip6Ry1RFWQLPGeR6VIeRQtxitGzq+S7bd7MK6dAA==\n",
};

static struct minisign_keyring *keyring;
static struct minisign_sig *good[ELEMENTSOF(sig_texts)];
static uint8_t message_hash[MINISIGN_HASH_SIZE];

static void setup(void)
{
        _cleanup_free_ char *error = NULL;
        keyring = minisign_keyring_new();
        fuzz_check(minisign_keyring_add(keyring, key_text, strlen(key_text), "fixed", &error) == 0,
                   "%s", error);
        for (size_t i = 0; i < ELEMENTSOF(sig_texts); i++)
                fuzz_check(
                    minisign_sig_parse(sig_texts[i], strlen(sig_texts[i]), &good[i], &error) == 0,
                    "%s", error);
        _cleanup_(minisign_hasher_freep) struct minisign_hasher *h = NULL;
        fuzz_check(minisign_hasher_new(&h) == 0 &&
                       minisign_hasher_update(h, message, strlen(message)) == 0 &&
                       minisign_hasher_final(h, message_hash) == 0,
                   "BLAKE2b");
}

static bool same_sig(const struct minisign_sig *a, const struct minisign_sig *b)
{
        return a->prehashed == b->prehashed &&
               memcmp(a->key_id, b->key_id, sizeof a->key_id) == 0 &&
               memcmp(a->sig, b->sig, sizeof a->sig) == 0 &&
               memcmp(a->global_sig, b->global_sig, sizeof a->global_sig) == 0 &&
               strcmp(a->trusted_comment, b->trusted_comment) == 0;
}

/* Verifies sig over the message with k; returns verify's code. */
static int verify(const struct minisign_keyring *k, const struct minisign_sig *sig, bool hashed,
                  unsigned flags)
{
        _cleanup_free_ char *error = NULL;
        const struct minisign_key *used = NULL;
        int r =
            hashed ? minisign_verify_prehashed(k, sig, message_hash, flags, &used, &error)
                   : minisign_verify_buffer(k, sig, message, strlen(message), flags, &used, &error);
        fuzz_note("  verify (%s, %s): %s", hashed ? "prehashed" : "buffer",
                  flags ? "legacy allowed" : "no legacy", r < 0 ? error : "verified");
        if (r < 0) {
                fuzz_check(fuzz_message_is_clean(error), "unclean error: %s",
                           error ? error : "(none)");
                return r;
        }
        fuzz_check(!error && used, "success with an error or without a key");
        return 0;
}

static void fuzz_sig(const char *text, size_t len)
{
        _cleanup_(minisign_sig_freep) struct minisign_sig *sig = NULL;
        _cleanup_free_ char *error = NULL;
        int r = minisign_sig_parse(text, len, &sig, &error);
        fuzz_note("minisign_sig_parse: %s", r < 0 ? error : "parsed");
        if (r < 0) {
                fuzz_check(!sig && fuzz_message_is_clean(error), "unclean error: %s",
                           error ? error : "(none)");
                return;
        }
        fuzz_check(!error, "success with an error");
        fuzz_check(utf8_check(sig->trusted_comment, strlen(sig->trusted_comment), NULL, NULL) == 0,
                   "trusted comment is not UTF-8");

        bool verified = false;
        for (int hashed = 0; hashed <= 1; hashed++)
                for (unsigned flags = 0; flags <= MINISIGN_ALLOW_LEGACY; flags++)
                        if (verify(keyring, sig, hashed, flags) == 0)
                                verified = true;
        if (!verified)
                return;
        bool known = false;
        for (size_t i = 0; i < ELEMENTSOF(good); i++)
                known |= same_sig(sig, good[i]);
        fuzz_check(known, "a signature that the key never made verified");
}

static void fuzz_key(const char *text, size_t len)
{
        struct minisign_key key = {0};
        _cleanup_free_ char *error = NULL;
        int r = minisign_key_parse(text, len, &key, &error);
        fuzz_note("minisign_key_parse: %s", r < 0 ? error : "parsed");
        if (r < 0) {
                fuzz_check(r == -EBADMSG || r == -EKEYREJECTED, "code %d", r);
                fuzz_check(fuzz_message_is_clean(error), "unclean error: %s",
                           error ? error : "(none)");
                return;
        }
        char id[MINISIGN_KEY_ID_STRING_MAX];
        minisign_key_id_to_string(key.key_id, id);
        fuzz_check(strcmp(id, key.key_id_string) == 0, "key id %s vs %s", id, key.key_id_string);

        _cleanup_(minisign_keyring_freep) struct minisign_keyring *k = minisign_keyring_new();
        fuzz_check(minisign_keyring_add(k, text, len, "fuzzed", &error) == 0, "%s", error);
        const struct minisign_key *fixed = &keyring->keys[0];
        bool is_fixed = memcmp(key.pk, fixed->pk, sizeof key.pk) == 0 &&
                        memcmp(key.key_id, fixed->key_id, sizeof key.key_id) == 0;
        for (size_t i = 0; i < ELEMENTSOF(good); i++)
                if (verify(k, good[i], false, MINISIGN_ALLOW_LEGACY) == 0)
                        fuzz_check(is_fixed, "another key verified the fixed key's signature");
        /* The same key again is no error; another key under its id is. */
        r = minisign_keyring_add(k, key_text, strlen(key_text), "fixed", &error);
        if (r < 0) {
                fuzz_check(r == -EEXIST && !is_fixed, "code %d", r);
                fuzz_check(fuzz_message_is_clean(error), "unclean error: %s", error);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (!keyring)
                setup();
        const char *text = (const char *)data;
        fuzz_key(text, size);
        fuzz_sig(text, size);
        return 0;
}
