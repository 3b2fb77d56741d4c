/* liictl: asks liid on this host what it runs and tells it what to do,
 * over liid's local socket API. This file owns the command line (global
 * options, the command table, help, version and usage errors); each
 * command lives in its own cmd-<verb>.c, the output helpers they share in
 * output.c. */
#include "liictl.h"

#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>

#include "lii-version.h"

static const struct cmd *const commands[] = {
    &cmd_status,   &cmd_events,  &cmd_wait,   &cmd_sync,    &cmd_pause, &cmd_resume,
    &cmd_rollback, &cmd_replace, &cmd_verify, &cmd_publish, &cmd_fleet,
};

static void help(void)
{
        printf("Usage: liictl [-s SOCKET] [--json] COMMAND [ARGS]\n"
               "\n"
               "Asks liid, the lii node agent, what this host runs and tells it what to do.\n"
               "\n"
               "Commands:\n");
        /* Commands with their arguments, then what they do; the full
         * synopsis of each is in `liictl COMMAND --help`. */
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                printf("  %-10s %s\n", commands[i]->name, commands[i]->summary);
        printf("\n"
               "Options:\n"
               "  -s, --socket SOCKET  liid's socket (default: $%s, else %s)\n"
               "      --json           print liid's JSON instead of tables\n"
               "  -h, --help           show this help, or a command's with COMMAND --help\n"
               "      --version        show the version\n"
               "\n"
               "Exit status: 0 done, 1 refused or failed, 2 usage, 3 liid unreachable,\n"
               "4 permission denied, 5 timed out.\n",
               LII_SOCKET_ENV, LII_DEFAULT_SOCKET);
}

int main(int argc, char **argv)
{
        enum { OPT_JSON = 0x100, OPT_VERSION };
        static const struct option options[] = {
            {"socket", required_argument, NULL, 's'},
            {"json", no_argument, NULL, OPT_JSON},
            {"help", no_argument, NULL, 'h'},
            {"version", no_argument, NULL, OPT_VERSION},
            {},
        };
        struct ctl ctl = {.socket_path = getenv(LII_SOCKET_ENV)};
        if (!ctl.socket_path || !*ctl.socket_path)
                ctl.socket_path = LII_DEFAULT_SOCKET;

        int c;
        opterr = 0;
        /* "+" stops at the command, whose options are its own. */
        while ((c = getopt_long(argc, argv, "+s:h", options, NULL)) != -1) {
                switch (c) {
                case 's':
                        ctl.socket_path = optarg;
                        break;
                case OPT_JSON:
                        ctl.json = true;
                        break;
                case 'h':
                        help();
                        return LIICTL_EXIT_OK;
                case OPT_VERSION:
                        printf("liictl %s\n", LII_VERSION);
                        return LIICTL_EXIT_OK;
                default:
                        ctl_usage_error(NULL, "unknown option or missing argument: %s",
                                        argv[optind - 1]);
                        return LIICTL_EXIT_USAGE;
                }
        }
        if (optind >= argc) {
                ctl_usage_error(NULL, "missing command");
                return LIICTL_EXIT_USAGE;
        }

        const struct cmd *cmd = NULL;
        for (size_t i = 0; i < ELEMENTSOF(commands) && !cmd; i++)
                if (strcmp(commands[i]->name, argv[optind]) == 0)
                        cmd = commands[i];
        if (!cmd) {
                _cleanup_free_ char *p = ctl_printable(argv[optind]);
                ctl_usage_error(NULL, "unknown command: %s", p);
                return LIICTL_EXIT_USAGE;
        }

        const char *no_color = getenv("NO_COLOR");
        ctl.tty = isatty(STDOUT_FILENO);
        ctl.color = ctl.tty && !(no_color && *no_color);

        /* Commands parse their arguments with getopt_long() again from the
         * start; optind = 0 makes glibc reset its state for that. */
        int rest = argc - optind;
        char **args = argv + optind;
        optind = 0;
        int ret = cmd->run(&ctl, rest, args);

        if (fflush(stdout) != 0 && ret == LIICTL_EXIT_OK) {
                fprintf(stderr, "liictl: cannot write the output: %m\n");
                ret = LIICTL_EXIT_FAILED;
        }
        return ret;
}

int ctl_getopt(struct ctl *ctl, const struct cmd *cmd, int argc, char **argv, const char *shortopts,
               const struct option *extra, int *ret_exit)
{
        struct option options[16] = {
            {"json", no_argument, NULL, CTL_OPT_JSON},
            {"help", no_argument, NULL, 'h'},
        };
        size_t n = 2;
        for (size_t i = 0; extra && extra[i].name && n + 1 < ELEMENTSOF(options); i++)
                options[n++] = extra[i];
        _cleanup_free_ char *shorts = xasprintf("h%s", shortopts ? shortopts : "");

        opterr = 0;
        for (;;) {
                int c = getopt_long(argc, argv, shorts, options, NULL);
                switch (c) {
                case CTL_OPT_JSON:
                        ctl->json = true;
                        continue;
                case 'h':
                        printf("Usage: liictl %s %s\n\n%s\n", cmd->name, cmd->args, cmd->help);
                        *ret_exit = LIICTL_EXIT_OK;
                        return CTL_GETOPT_EXIT;
                case '?':
                case ':':
                        ctl_usage_error(cmd->name, "unknown option or missing argument: %s",
                                        argv[optind - 1]);
                        *ret_exit = LIICTL_EXIT_USAGE;
                        return CTL_GETOPT_EXIT;
                default:
                        return c;
                }
        }
}

void ctl_usage_error(const char *cmd, const char *fmt, ...)
{
        va_list ap;
        fputs("liictl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nTry 'liictl %s%s--help'.\n", cmd ? cmd : "", cmd ? " " : "");
}

int ctl_exec_helper(const char *name, char *const *args)
{
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n < 0) {
                fprintf(stderr, "liictl: cannot find %s: /proc/self/exe: %m\n", name);
                return LIICTL_EXIT_FAILED;
        }
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash)
                slash[1] = '\0';

        fflush(stdout);
        static const char *const places[] = {"", "../libexec/lii/"};
        for (size_t i = 0; i < ELEMENTSOF(places); i++) {
                _cleanup_free_ char *path = xasprintf("%s%s%s", self, places[i], name);
                execv(path, args);
                /* Not there: the next place. There but failing: say so. */
                if (errno != ENOENT) {
                        fprintf(stderr, "liictl: cannot run %s: %m\n", path);
                        return LIICTL_EXIT_FAILED;
                }
        }
        fprintf(stderr, "liictl: %s is neither in %s nor in %s../libexec/lii/\n", name, self, self);
        return LIICTL_EXIT_FAILED;
}
