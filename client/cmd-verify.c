/* liictl verify --key PUB FILE [SIG]: checks a minisign signature offline,
 * with the same code liid uses, so that a publisher can test a release
 * before liid refuses it, and an operator can see why liid did. liictl
 * reads the command line; the check runs in liictl-verify (verify/), the
 * one part of liictl that needs OpenSSL, so that the rest starts without
 * loading it. */
#include "liictl.h"

#include <getopt.h>

static int run(struct ctl *ctl, int argc, char **argv)
{
        enum { OPT_KEY = 0x200 };
        static const struct option options[] = {
            {"key", required_argument, NULL, OPT_KEY},
            {},
        };
        const char *key = NULL;
        int c, ret = LIICTL_EXIT_OK;
        while ((c = ctl_getopt(ctl, &cmd_verify, argc, argv, "", options, &ret)) != -1) {
                if (c == CTL_GETOPT_EXIT)
                        return ret;
                if (c == OPT_KEY)
                        key = optarg;
        }
        int n = argc - optind;
        if (!key) {
                ctl_usage_error(cmd_verify.name, "--key is required");
                return LIICTL_EXIT_USAGE;
        }
        if (n < 1 || n > 2) {
                ctl_usage_error(cmd_verify.name, "expected FILE and optionally SIG");
                return LIICTL_EXIT_USAGE;
        }
        const char *file = argv[optind];
        _cleanup_free_ char *sig_path =
            n == 2 ? xstrdup(argv[optind + 1]) : xasprintf("%s.minisig", file);

        char *args[] = {"liictl-verify", ctl->json ? "json" : "text",
                        (char *)key,     (char *)file,
                        sig_path,        NULL};
        return ctl_exec_helper("liictl-verify", args);
}

const struct cmd cmd_verify = {
    .name = "verify",
    .args = "--key PUB FILE [SIG]",
    .summary = "check a file's minisign signature offline",
    .help = "Checks that SIG (default FILE.minisig) is a valid minisign signature of FILE\n"
            "by the public key in PUB (a .pub file, or a folder of them as liid's key\n"
            "folders are), exactly as liid checks documents and artifacts: only the\n"
            "prehashed form is accepted, and the trusted comment must be intact. Does\n"
            "not talk to liid. Exit 0 when the signature holds, 1 when it does not\n"
            "or when PUB holds a weak key (one of small order, as minisign refuses).\n"
            "\n"
            "Options:\n"
            "      --key PUB   the trusted public key file or key folder\n"
            "  -h, --help      show this help",
    .run = run,
};
