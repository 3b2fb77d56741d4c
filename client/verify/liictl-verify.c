/* liictl-verify: the checking half of `liictl verify`, a program of its
 * own so that liictl itself starts without OpenSSL's libcrypto (loading it
 * cost more than the rest of `liictl --version`). liictl has parsed and
 * checked the command line and runs this in its place:
 *
 *   liictl-verify json|text PUB FILE SIG
 *
 * It checks the signature with the code liid uses and prints what liictl
 * verify prints, with liictl's exit codes. */
#include "liictl.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "minisign.h"

/* Streams the file through BLAKE2b-512: a release may be large, and the
 * prehashed form never needs it whole. */
static int hash_file(const char *path, uint8_t hash[MINISIGN_HASH_SIZE])
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        _cleanup_(minisign_hasher_freep) struct minisign_hasher *h = NULL;
        int r = minisign_hasher_new(&h);
        if (r < 0)
                return r;
        char buf[65536];
        for (;;) {
                ssize_t n = read(fd, buf, sizeof buf);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                r = minisign_hasher_update(h, buf, (size_t)n);
                if (r < 0)
                        return r;
        }
        return minisign_hasher_final(h, hash);
}

static int refuse(bool json, const char *file, const char *reason)
{
        _cleanup_free_ char *p = ctl_printable(reason);
        if (json) {
                _cleanup_json_ json_object *o = json_object_new_object();
                json_object_object_add(o, "file", json_object_new_string(file));
                json_object_object_add(o, "verified", json_object_new_boolean(false));
                json_object_object_add(o, "error", json_object_new_string(reason));
                puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                           JSON_C_TO_STRING_NOSLASHESCAPE));
        }
        fprintf(stderr, "liictl: %s: %s\n", file, p);
        return LIICTL_EXIT_FAILED;
}

static int verify(bool json, const char *key, const char *file, const char *sig_path)
{
        _cleanup_free_ char *error = NULL;
        _cleanup_(minisign_keyring_freep) struct minisign_keyring *k = NULL;
        int r = minisign_keyring_load_path(key, &k, &error);
        if (r == -EKEYREJECTED) {
                /* A key that is there and well-formed but weak is a refusal,
                 * as liid would refuse it, not a mistake on the command line:
                 * no signature under it can hold. */
                _cleanup_free_ char *msg = xasprintf("key: %s", error);
                return refuse(json, file, msg);
        }
        if (r < 0) {
                _cleanup_free_ char *p = ctl_printable(error);
                fprintf(stderr, "liictl: key: %s\n", p);
                return LIICTL_EXIT_USAGE;
        }

        _cleanup_free_ char *sig_text = NULL;
        size_t sig_len;
        r = read_file_capped(sig_path, MINISIGN_SIG_FILE_MAX, &sig_text, &sig_len);
        if (r < 0) {
                _cleanup_free_ char *msg = xasprintf("signature %s: %s", sig_path,
                                                     r == -EFBIG ? "too large for a signature file"
                                                                 : read_file_strerror(r));
                return refuse(json, file, msg);
        }
        _cleanup_(minisign_sig_freep) struct minisign_sig *sig = NULL;
        if (minisign_sig_parse(sig_text, sig_len, &sig, &error) < 0) {
                _cleanup_free_ char *msg = xasprintf("signature %s: %s", sig_path, error);
                return refuse(json, file, msg);
        }
        uint8_t hash[MINISIGN_HASH_SIZE];
        r = hash_file(file, hash);
        if (r < 0)
                return refuse(json, file, strerror(-r));
        const struct minisign_key *by;
        if (minisign_verify_prehashed(k, sig, hash, 0, &by, &error) < 0)
                return refuse(json, file, error);

        if (json) {
                _cleanup_json_ json_object *o = json_object_new_object();
                json_object_object_add(o, "file", json_object_new_string(file));
                json_object_object_add(o, "verified", json_object_new_boolean(true));
                json_object_object_add(o, LII_F_KEY_ID, json_object_new_string(by->key_id_string));
                json_object_object_add(o, LII_F_TRUSTED_COMMENT,
                                       json_object_new_string(sig->trusted_comment));
                puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                           JSON_C_TO_STRING_NOSLASHESCAPE));
                return LIICTL_EXIT_OK;
        }
        _cleanup_free_ char *comment = ctl_printable(sig->trusted_comment);
        printf("%s: signature verified\n"
               "key:             %s\n"
               "trusted comment: %s\n",
               file, by->key_id_string, comment);
        return LIICTL_EXIT_OK;
}

int main(int argc, char **argv)
{
        if (argc != 5 || (strcmp(argv[1], "json") != 0 && strcmp(argv[1], "text") != 0)) {
                fprintf(stderr, "liictl-verify: run by `liictl verify`, not by hand\n");
                return LIICTL_EXIT_USAGE;
        }
        int ret = verify(strcmp(argv[1], "json") == 0, argv[2], argv[3], argv[4]);
        if (fflush(stdout) != 0 && ret == LIICTL_EXIT_OK) {
                fprintf(stderr, "liictl: cannot write the output: %m\n");
                ret = LIICTL_EXIT_FAILED;
        }
        return ret;
}
