/* liictl publish --etcd URL DOCUMENT [SIG]: writes a signed desired-state
 * document and its signature into etcd for a fleet of liid nodes, after
 * the checks liid would make, and never over a document it has not seen.
 * liictl reads the command line; the work runs in liictl-publish
 * (publish/), which links libcurl and OpenSSL so that liictl need not. */
#include "liictl.h"

#include <getopt.h>
#include <string.h>

#include "etcd-url.h"

static const char *const no_value = "";

/* A file given to an option that cannot be read is a mistake on the
 * command line, found before anything talks to etcd. */
static bool readable(const char *option, const char *path)
{
        if (!path || access(path, R_OK) == 0)
                return true;
        int e = errno;
        _cleanup_free_ char *p = ctl_printable(path);
        ctl_usage_error(cmd_publish.name, "%s %s: %s", option, p, strerror(e));
        return false;
}

static int run(struct ctl *ctl, int argc, char **argv)
{
        enum {
                OPT_ETCD = 0x200,
                OPT_KEY,
                OPT_CA_FILE,
                OPT_CERT_FILE,
                OPT_KEY_FILE,
                OPT_USER,
                OPT_PASSWORD_FILE,
        };
        static const struct option options[] = {
            {"etcd", required_argument, NULL, OPT_ETCD},
            {"key", required_argument, NULL, OPT_KEY},
            {"ca-file", required_argument, NULL, OPT_CA_FILE},
            {"cert-file", required_argument, NULL, OPT_CERT_FILE},
            {"key-file", required_argument, NULL, OPT_KEY_FILE},
            {"user", required_argument, NULL, OPT_USER},
            {"password-file", required_argument, NULL, OPT_PASSWORD_FILE},
            {},
        };
        const char *url = NULL, *ca_file = NULL, *cert_file = NULL, *key_file = NULL;
        const char *user = NULL, *password_file = NULL;
        const char *keys[LIICTL_PUBLISH_MAX_KEYS];
        size_t n_keys = 0;
        int c, ret = LIICTL_EXIT_OK;
        while ((c = ctl_getopt(ctl, &cmd_publish, argc, argv, "", options, &ret)) != -1) {
                switch (c) {
                case CTL_GETOPT_EXIT:
                        return ret;
                case OPT_ETCD:
                        url = optarg;
                        break;
                case OPT_KEY:
                        if (n_keys == ELEMENTSOF(keys)) {
                                ctl_usage_error(cmd_publish.name, "more than %zu --key options",
                                                ELEMENTSOF(keys));
                                return LIICTL_EXIT_USAGE;
                        }
                        keys[n_keys++] = optarg;
                        break;
                case OPT_CA_FILE:
                        ca_file = optarg;
                        break;
                case OPT_CERT_FILE:
                        cert_file = optarg;
                        break;
                case OPT_KEY_FILE:
                        key_file = optarg;
                        break;
                case OPT_USER:
                        user = optarg;
                        break;
                case OPT_PASSWORD_FILE:
                        password_file = optarg;
                        break;
                }
        }
        if (!url) {
                ctl_usage_error(cmd_publish.name, "--etcd URL is required");
                return LIICTL_EXIT_USAGE;
        }
        struct etcd_url u;
        _cleanup_free_ char *error = NULL;
        if (etcd_url_parse(url, &u, &error) < 0) {
                _cleanup_free_ char *p = ctl_printable(url), *e = ctl_printable(error);
                ctl_usage_error(cmd_publish.name, "--etcd %s: %s", p, e);
                return LIICTL_EXIT_USAGE;
        }
        bool tls = u.tls;
        etcd_url_done(&u);
        if (!tls && (ca_file || cert_file || key_file)) {
                ctl_usage_error(cmd_publish.name,
                                "--ca-file, --cert-file and --key-file are for etcds:// (TLS)");
                return LIICTL_EXIT_USAGE;
        }
        if (!cert_file != !key_file) {
                ctl_usage_error(cmd_publish.name, "--cert-file and --key-file go together");
                return LIICTL_EXIT_USAGE;
        }
        if (!user != !password_file) {
                ctl_usage_error(cmd_publish.name, "--user and --password-file go together");
                return LIICTL_EXIT_USAGE;
        }
        if (user && (!*user || strpbrk(user, "\r\n"))) {
                ctl_usage_error(cmd_publish.name, "--user: an empty name or one with a newline");
                return LIICTL_EXIT_USAGE;
        }
        int n = argc - optind;
        if (n < 1 || n > 2) {
                ctl_usage_error(cmd_publish.name, "expected DOCUMENT and optionally SIGNATURE");
                return LIICTL_EXIT_USAGE;
        }
        if (!readable("--ca-file", ca_file) || !readable("--cert-file", cert_file) ||
            !readable("--key-file", key_file) || !readable("--password-file", password_file))
                return LIICTL_EXIT_USAGE;
        const char *doc = argv[optind];
        _cleanup_free_ char *sig =
            n == 2 ? xstrdup(argv[optind + 1]) : xasprintf("%s.minisig", doc);

        /* liictl-publish's argv: fixed places, "" for an option not given,
         * then the keys. */
        char *args[10 + LIICTL_PUBLISH_MAX_KEYS + 1] = {
            "liictl-publish",
            ctl->json ? "json" : "text",
            (char *)url,
            (char *)doc,
            sig,
            (char *)(ca_file ? ca_file : no_value),
            (char *)(cert_file ? cert_file : no_value),
            (char *)(key_file ? key_file : no_value),
            (char *)(user ? user : no_value),
            (char *)(password_file ? password_file : no_value),
        };
        for (size_t i = 0; i < n_keys; i++)
                args[10 + i] = (char *)keys[i];
        return ctl_exec_helper("liictl-publish", args);
}

const struct cmd cmd_publish = {
    .name = "publish",
    .args = "--etcd URL [--key PUB]... [TLS and auth options] DOCUMENT [SIGNATURE]",
    .summary = "write a signed desired-state document into etcd for a fleet",
    .help = "Writes DOCUMENT and its minisign SIGNATURE (default DOCUMENT.minisig) to\n"
            "PREFIX/desired/doc and PREFIX/desired/sig of the etcd cluster at URL\n"
            "(etcd://HOST:PORT[,HOST:PORT...]/PREFIX, etcds:// for TLS), where every liid\n"
            "with that source reads it. First DOCUMENT is checked as liid will check it\n"
            "(strict JSON, the lii.desired/1 schema, absolute artifact URLs, not\n"
            "expired) and, with --key, its signature. Its serial must be above the one\n"
            "in etcd; both keys are then written in one transaction that holds only if\n"
            "desired/doc is still what was read: a publish that came in between is\n"
            "never overwritten. Members are tried in the order given. Does not talk\n"
            "to liid.\n"
            "\n"
            "Options:\n"
            "      --etcd URL            the cluster and key prefix (required)\n"
            "      --key PUB             check the signature against this public key file\n"
            "                            or key folder; may be repeated (without it the\n"
            "                            signature is not checked, only parsed)\n"
            "      --ca-file FILE        CA certificates for etcds://\n"
            "      --cert-file FILE      client certificate for etcds://, with --key-file\n"
            "      --key-file FILE       its private key\n"
            "      --user NAME           etcd user, with --password-file\n"
            "      --password-file FILE  a file holding that user's password\n"
            "      --json                print {\"serial\", \"revision\", \"url\"}\n"
            "  -h, --help                show this help\n"
            "\n"
            "Exit 0 when published, 1 when refused (the document, the signature, a\n"
            "serial not above etcd's, etcd changed under us) or etcd failed, 2 on\n"
            "usage errors, 3 when no etcd member answers, 4 when etcd denies access.",
    .run = run,
};
