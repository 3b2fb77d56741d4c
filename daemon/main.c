/* liid: command line, configuration, the loop and signals. */
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <string.h>
#include <sys/random.h>
#include <curl/curl.h>
#include <systemd/sd-daemon.h>
#include <uv.h>

#include "config.h"
#include "engine.h"
#include "lii-version.h"
#include "log.h"

struct daemon {
        uv_loop_t loop;
        uv_signal_t sigterm, sigint;
        uv_timer_t watchdog;
        struct engine *engine;
};

static void on_watchdog(uv_timer_t *t)
{
        sd_notify(0, "WATCHDOG=1");
}

static void help(void)
{
        printf("Usage: liid [OPTION]...\n"
               "Run the lii node agent: watch the desired state, roll out signed artifacts as\n"
               "systemd units, health-check them and retire what they replace.\n\n"
               "  -c, --config FILE       configuration file (default %s)\n"
               "      --source URL        desired-state URL (file://, http://, https://)\n"
               "      --state-dir DIR     state and artifact store (default /var/lib/lii)\n"
               "  -s, --socket PATH       API socket (default /run/lii/liid.sock)\n"
               "      --bus BUS           system, user or a D-Bus address (default system)\n"
               "      --log-level LEVEL   error, warning, notice, info or debug\n"
               "      --version           print the version and exit\n"
               "  -h, --help              print this help and exit\n\n"
               "Flags override the configuration file. See liid(8) and liid.conf(5).\n",
               CONFIG_DEFAULT_PATH);
}

/* Command-line flags map onto configuration keys, so both are checked by
 * the same code and name the same things. */
static int parse_args(int argc, char **argv, struct config *cfg)
{
        enum { ARG_SOURCE = 0x100, ARG_STATE_DIR, ARG_BUS, ARG_LOG_LEVEL, ARG_VERSION };
        static const struct option longopts[] = {
            {"config", required_argument, NULL, 'c'},
            {"source", required_argument, NULL, ARG_SOURCE},
            {"state-dir", required_argument, NULL, ARG_STATE_DIR},
            {"socket", required_argument, NULL, 's'},
            {"bus", required_argument, NULL, ARG_BUS},
            {"log-level", required_argument, NULL, ARG_LOG_LEVEL},
            {"version", no_argument, NULL, ARG_VERSION},
            {"help", no_argument, NULL, 'h'},
            {},
        };
        struct {
                const char *section, *key, *value, *flag;
        } overrides[8];
        size_t n = 0;
        const char *config_path = CONFIG_DEFAULT_PATH;
        bool config_given = false;
        int c;
        while ((c = getopt_long(argc, argv, "c:s:h", longopts, NULL)) >= 0) {
                switch (c) {
                case 'c':
                        config_path = optarg;
                        config_given = true;
                        break;
                case ARG_SOURCE:
                        overrides[n++] =
                            (typeof(overrides[0])){"source", "url", optarg, "--source"};
                        break;
                case ARG_STATE_DIR:
                        overrides[n++] =
                            (typeof(overrides[0])){"paths", "state_dir", optarg, "--state-dir"};
                        break;
                case 's':
                        overrides[n++] =
                            (typeof(overrides[0])){"paths", "socket", optarg, "--socket"};
                        break;
                case ARG_BUS:
                        overrides[n++] = (typeof(overrides[0])){"systemd", "bus", optarg, "--bus"};
                        break;
                case ARG_LOG_LEVEL:
                        overrides[n++] =
                            (typeof(overrides[0])){"log", "level", optarg, "--log-level"};
                        break;
                case ARG_VERSION:
                        printf("liid %s\n", LII_VERSION);
                        return 1;
                case 'h':
                        help();
                        return 1;
                default:
                        fprintf(stderr, "Try 'liid --help'.\n");
                        return -EINVAL;
                }
                if (n == ELEMENTSOF(overrides)) {
                        fprintf(stderr, "liid: too many flags\n");
                        return -EINVAL;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "liid: unexpected argument '%s'\nTry 'liid --help'.\n",
                        argv[optind]);
                return -EINVAL;
        }

        _cleanup_free_ char *error = NULL;
        /* The default file may be absent (flags alone suffice); a file named
         * with -c must exist. */
        if (config_load_file(cfg, config_path, !config_given, &error) < 0) {
                fprintf(stderr, "liid: %s\n", error);
                return -EINVAL;
        }
        for (size_t i = 0; i < n; i++) {
                if (config_set(cfg, overrides[i].section, overrides[i].key, overrides[i].value,
                               &error) < 0) {
                        fprintf(stderr, "liid: %s: %s\n", overrides[i].flag, error);
                        return -EINVAL;
                }
        }
        return 0;
}

static void on_signal(uv_signal_t *handle, int signum)
{
        struct daemon *d = handle->data;
        log_info("Received %s, shutting down; instances keep running", strsignal(signum));
        sd_notify(0, "STOPPING=1");
        d->engine = engine_free(d->engine);
        uv_close((uv_handle_t *)&d->sigterm, NULL);
        uv_close((uv_handle_t *)&d->sigint, NULL);
        uv_close((uv_handle_t *)&d->watchdog, NULL);
}

int main(int argc, char **argv)
{
        struct config cfg;
        config_init_defaults(&cfg);
        int r = parse_args(argc, argv, &cfg);
        if (r != 0) {
                config_done(&cfg);
                return r > 0 ? EXIT_SUCCESS : 2;
        }
        /* A folder that cannot work is a configuration error too: said
         * now, with the key that names it, rather than as a failure deep in
         * the start or at the first rollout. sd_listen_fds(0) leaves the
         * passed sockets for the API to take. */
        _cleanup_free_ char *error = NULL;
        if (config_prepare_paths(&cfg, sd_listen_fds(0) > 0, &error) < 0) {
                fprintf(stderr, "liid: %s\n", error);
                config_done(&cfg);
                return 2;
        }
        log_max_level = cfg.log_level;
        log_open();
        signal(SIGPIPE, SIG_IGN);
        curl_global_init(CURL_GLOBAL_DEFAULT);
        /* Poll jitter exists so that a fleet does not poll in lockstep;
         * every host must draw different numbers. */
        unsigned seed;
        if (getrandom(&seed, sizeof seed, 0) != sizeof seed)
                seed = (unsigned)getpid() ^ (unsigned)now_realtime_usec();
        srandom(seed);

        struct daemon d = {0};
        /* How liid's heap behaves (see BENCHMARKS.md, section 4 and 5):
         * - one arena: libuv's pool threads would each get their own, and
         *   each keeps the ~120 KiB of its last copy or unpack buffer;
         * - blocks up to 1 MiB come from the heap, and up to 4 MiB of free
         *   heap is kept: a status answer at 500 services builds and frees
         *   ~1.5 MiB, and handing that back to the kernel after each request
         *   only to fault it in again tripled its CPU (page faults cost tens
         *   of microseconds on a VM). What a batch of rollouts leaves is
         *   handed back explicitly when the batch ends (rollout.c). */
        mallopt(M_ARENA_MAX, 1);
        mallopt(M_MMAP_THRESHOLD, 1 << 20);
        mallopt(M_TRIM_THRESHOLD, 4 << 20);
        uv_loop_init(&d.loop);
        uv_signal_init(&d.loop, &d.sigterm);
        uv_signal_init(&d.loop, &d.sigint);
        d.sigterm.data = d.sigint.data = &d;
        uv_signal_start(&d.sigterm, on_signal, SIGTERM);
        uv_signal_start(&d.sigint, on_signal, SIGINT);

        r = engine_new(&d.loop, &cfg, &d.engine);
        if (r < 0) {
                uv_close((uv_handle_t *)&d.sigterm, NULL);
                uv_close((uv_handle_t *)&d.sigint, NULL);
                uv_run(&d.loop, UV_RUN_DEFAULT);
                uv_loop_close(&d.loop);
                config_done(&cfg);
                curl_global_cleanup();
                return EXIT_FAILURE;
        }
        log_info("liid %s started: source %s, state %s, API on %s", LII_VERSION, cfg.source_url,
                 cfg.state_dir, cfg.socket_path);
        sd_notify(0, "READY=1");
        /* With WatchdogSec= set, systemd restarts a liid whose loop hangs;
         * pinging at half the interval proves the loop turns. */
        uint64_t watchdog_usec = 0;
        uv_timer_init(&d.loop, &d.watchdog);
        if (sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec >= 2 * USEC_PER_MSEC)
                uv_timer_start(&d.watchdog, on_watchdog, 0, watchdog_usec / 2 / USEC_PER_MSEC);

        uv_run(&d.loop, UV_RUN_DEFAULT);
        bool failed = engine_failed(d.engine);
        d.engine = engine_free(d.engine);
        if (!uv_is_closing((uv_handle_t *)&d.sigterm)) {
                uv_close((uv_handle_t *)&d.sigterm, NULL);
                uv_close((uv_handle_t *)&d.sigint, NULL);
                uv_close((uv_handle_t *)&d.watchdog, NULL);
        }
        uv_run(&d.loop, UV_RUN_DEFAULT);
        r = uv_loop_close(&d.loop);
        if (r < 0)
                log_warning("Some handles were still open at exit: %s", uv_strerror(r));
        config_done(&cfg);
        curl_global_cleanup();
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
