/* Injected faults, one test case each, with the real liid, systemd, nginx
 * and minisign: a full disk while an artifact is unpacked and while state
 * is written, the service manager re-executed or its bus dropped under a
 * rollout, hostile HTTP sources (a small server of the test's own for what
 * nginx will not do) and TLS failures, hostile API clients, the wall clock
 * set far forward and back (libfaketime), and a revert or rollback whose
 * files are gone or damaged. Each asserts what a user would
 * notice: the running service keeps answering, status and events say why,
 * no state file is torn, and liid recovers by itself. Each prints one line
 * "fault: name=… result=… …" and, when LII_FAULTS_SUMMARY names a file,
 * appends it there (RELIABILITY.md is written from those lines).
 * What other tests cover is not repeated here: test_full_disk.c (a full
 * disk while downloading and recording), test_http.c (trickling bodies, a
 * 500, oversized documents), test_api_limits.c (trickling API clients,
 * per-user shares), test_lifecycle.c (SIGTERM ignored), test_chaos.c. */
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "util.h"

#define FAKETIME_LIB "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"

static struct h_env env;

/* ---- reporting ---- */

/* Prints "fault: <line>" and appends it to $LII_FAULTS_SUMMARY. */
static void fault_report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fault_report(const char *fmt, ...)
{
        char line[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line, sizeof line, fmt, ap);
        va_end(ap);
        printf("fault: %s\n", line);
        fflush(stdout);
        const char *path = getenv("LII_FAULTS_SUMMARY");
        if (path && *path) {
                FILE *f = fopen(path, "ae");
                ck_assert_msg(f, "LII_FAULTS_SUMMARY=%s: %s", path, strerror(errno));
                fprintf(f, "fault: %s\n", line);
                fclose(f);
        }
}

/* What status said, as one token for a fault line: the source's error
 * after the URL it names, spaces as underscores. */
static const char *said(json_object *status, char *buf, size_t size)
{
        const char *error = h_json_str(status, "source.error");
        const char *after = error ? strstr(error, ": ") : NULL;
        snprintf(buf, size, "%s", after ? after + 2 : error ? error : "-");
        for (char *c = buf; *c; c++)
                if (*c == ' ' || *c == '\t' || *c == '\n')
                        *c = '_';
        return buf;
}

static long ms_since(uint64_t since_usec)
{
        return (long)((now_monotonic_usec() - since_usec) / USEC_PER_MSEC);
}

/* ---- what a user sees ---- */

/* The lii units that have processes, as one string "a b ", and how many. */
static int lii_units(char *out, size_t size)
{
        const char *args[] = {"list-units", "--no-legend",
                              "--plain",    "--state=active,activating,deactivating,reloading",
                              "lii-*",      NULL};
        char *text = NULL;
        h_systemctl(&env, &text, args);
        int n = 0;
        size_t len = 0;
        out[0] = '\0';
        char *save = NULL;
        for (char *line = strtok_r(text ? text : (char[]){""}, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
                char unit[128];
                if (sscanf(line, "%127s", unit) != 1)
                        continue;
                n++;
                int k = snprintf(out + len, size - len, "%s ", unit);
                if (k > 0 && (size_t)k < size - len)
                        len += (size_t)k;
        }
        free(text);
        return n;
}

/* Waits (10 s at most) until exactly the unit given has processes among
 * lii's: nothing orphaned, nothing doubled. */
static void assert_only_unit(const char *unit)
{
        char want[160], have[1024];
        snprintf(want, sizeof want, "%s ", unit);
        int n = 0;
        for (int i = 0; i < 500; i++) {
                n = lii_units(have, sizeof have);
                if (n == 1 && strcmp(have, want) == 0)
                        return;
                usleep(20000);
        }
        ck_abort_msg("lii units with processes: %d (%s), want only %s", n, have, unit);
}

/* How many kept events have this type (and mention text, if not NULL). */
static int count_events(const char *type, const char *text)
{
        char *body = NULL;
        ck_assert_int_eq(h_api_get_text(&env, "/v1/events", &body), 200);
        int n = 0;
        char *save = NULL;
        for (char *line = strtok_r(body, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                json_object *o = json_tokener_parse(line);
                ck_assert_ptr_nonnull(o);
                const char *t = h_json_str(o, "type"), *m = h_json_str(o, "message");
                n += t && strcmp(t, type) == 0 && (!text || (m && strstr(m, text)));
                json_object_put(o);
        }
        free(body);
        return n;
}

/* ---- nothing torn ---- */

static int state_files_checked;

static int check_state_file(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
        (void)st;
        (void)ftw;
        if (strstr(path, "/store/"))
                return 0;
        if (type == FTW_F) {
                size_t len = strlen(path);
                ck_assert_msg(len < 4 || strcmp(path + len - 4, ".tmp") != 0,
                              "a temporary state file was left behind: %s", path);
                if (len > 5 && strcmp(path + len - 5, ".json") == 0) {
                        char *text = NULL;
                        size_t n = 0;
                        FILE *f = fopen(path, "re");
                        ck_assert_ptr_nonnull(f);
                        ck_assert_int_ge(getdelim(&text, &n, '\0', f), 1);
                        fclose(f);
                        json_tokener *tok = json_tokener_new();
                        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
                        json_object *o = json_tokener_parse_ex(tok, text, (int)strlen(text));
                        ck_assert_msg(o && json_tokener_get_error(tok) == json_tokener_success,
                                      "state file %s does not parse: %s", path, text);
                        json_object_put(o);
                        json_tokener_free(tok);
                        free(text);
                        state_files_checked++;
                }
        }
        return 0;
}

/* Every state file parses, no temporary one is left, and every tree in
 * the store is a whole, read-only entry (a half one would stay in
 * store/tmp, and be gone once its job ended). */
static void assert_nothing_torn(void)
{
        state_files_checked = 0;
        ck_assert_int_eq(nftw(env.state_dir, check_state_file, 16, FTW_PHYS), 0);
        ck_assert_int_ge(state_files_checked, 1);
        char path[800];
        snprintf(path, sizeof path, "%s/store/tmp", env.state_dir);
        DIR *d = opendir(path);
        if (d) {
                for (struct dirent *de; (de = readdir(d));)
                        ck_assert_msg(de->d_name[0] == '.', "a half tree in the store: %s/%s", path,
                                      de->d_name);
                closedir(d);
        }
        snprintf(path, sizeof path, "%s/store/sha256", env.state_dir);
        d = opendir(path);
        ck_assert_ptr_nonnull(d);
        for (struct dirent *de; (de = readdir(d));) {
                if (de->d_name[0] == '.')
                        continue;
                char entry[1200];
                snprintf(entry, sizeof entry, "%s/%s", path, de->d_name);
                struct stat st;
                ck_assert_int_eq(lstat(entry, &st), 0);
                if (!S_ISDIR(st.st_mode))
                        continue;
                ck_assert_msg(strlen(de->d_name) == 64, "a stray tree in the store: %s", entry);
                ck_assert_msg((st.st_mode & 0777) == 0555, "%s is not read-only (%o)", entry,
                              st.st_mode & 0777);
        }
        closedir(d);
}

/* ---- predicates ---- */

static bool runs_desired(json_object *svc)
{
        const char *state = h_json_str(svc, "state");
        const char *cur = h_json_str(svc, "current.spec_sha256");
        const char *want = h_json_str(svc, "desired.spec_sha256");
        return state && strcmp(state, "running") == 0 && cur && want && strcmp(cur, want) == 0 &&
               json_object_get_boolean(h_json_path(svc, "current.healthy"));
}

/* The storage condition is over, the source applied this serial and hello
 * runs what it says. */
static bool recovered_at(json_object *status, void *serial)
{
        json_object *storage = h_json_path(status, "storage");
        return storage && !h_json_path(storage, "error") &&
               h_json_int(status, "source.serial") == *(long long *)serial &&
               !h_json_path(status, "source.error") &&
               runs_desired(h_json_path(status, "services.hello"));
}

static bool source_ok(json_object *status, void *unused)
{
        (void)unused;
        return h_json_path(status, "source") && !h_json_path(status, "source.error");
}

static bool state_is(json_object *svc, void *state)
{
        const char *s = h_json_str(svc, "state");
        return s && strcmp(s, state) == 0;
}

static bool checking_generation(json_object *svc, void *gen)
{
        return state_is(svc, "checking") && h_json_int(svc, "next.generation") == *(long long *)gen;
}

static bool failed_with(json_object *svc, void *why)
{
        const char *reason = h_json_str(svc, "last_rollout.reason");
        return state_is(svc, "failed") && reason && strstr(reason, why);
}

/* ---- common steps ---- */

static int port_v1;

static void deploy_v1(void)
{
        struct h_service v1 = {.name = "hello", .artifact = 1};
        h_publish(&env, &v1, 1, 0);
        json_object *svc = h_wait_generation(&env, "hello", 1);
        port_v1 = (int)h_json_int(svc, "current.port");
        json_object_put(svc);
}

static bool current_healthy(json_object *svc, void *gen)
{
        return h_json_int(svc, "current.generation") == *(long long *)gen &&
               json_object_get_boolean(h_json_path(svc, "current.healthy"));
}

/* v1 still serves, and status says so. */
static void assert_v1_kept(void)
{
        h_assert_answers(port_v1, "v1");
        /* A liid just started has not probed the instance it adopted. */
        long long gen = 1;
        json_object_put(h_wait_service(&env, "hello", current_healthy, &gen, 10000,
                                       "generation 1 to be current and healthy"));
        ck_assert(h_unit_active(&env, "lii-hello@1.service"));
}

static void assert_liid_alive(pid_t pid)
{
        ck_assert_int_eq(env.liid_pid, pid);
        int status;
        ck_assert_int_eq(waitpid(pid, &status, WNOHANG), 0);
}

static void teardown(void)
{
        h_teardown(&env);
}

/* ==== 1. a full disk while unpacking and while writing state ==== */

#define STATE_TMPFS_BYTES (16ULL << 20)
/* Zeros: a few KiB to download, 4 MiB to unpack. */
#define ZERO_PAD_BYTES      (4 << 20)
#define RECOVERY_TIMEOUT_MS 90000

static char filler[700];

static void setup_tmpfs(void)
{
        h_setup_tmpfs_state(&env, "faults-disk", STATE_TMPFS_BYTES);
        h_start_liid(&env);
        snprintf(filler, sizeof filler, "%s/filler", env.state_dir);
}

/* Fills the tmpfs but for about leave bytes; called again, fills the rest. */
static void fill(off_t leave)
{
        int fd = open(filler, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        static const char block[1 << 16];
        bool full = false;
        for (int i = 0; i < 10000 && !full; i++)
                if (write(fd, block, sizeof block) < 0) {
                        ck_assert_int_eq(errno, ENOSPC);
                        full = true;
                }
        ck_assert_msg(full, "the tmpfs under %s did not fill up", env.state_dir);
        off_t size = lseek(fd, 0, SEEK_END);
        ck_assert_int_eq(ftruncate(fd, size > leave ? size - leave : 0), 0);
        close(fd);
}

static bool unpack_failed_for_room(json_object *status, void *unused)
{
        (void)unused;
        const char *storage = h_json_str(status, "storage.error");
        json_object *hello = h_json_path(status, "services.hello");
        const char *reason = h_json_str(hello, "last_rollout.reason");
        return storage && strstr(storage, "No space left on device") &&
               state_is(hello, "pending") && reason && strstr(reason, "hello-zeros.tar.gz") &&
               strstr(reason, "No space left on device");
}

START_TEST(disk_full_unpack_and_state_write)
{
        pid_t pid = env.liid_pid;
        deploy_v1();
        char cmd[4096];
        snprintf(cmd, sizeof cmd,
                 "set -e; cd '%s'; rm -rf zeros; mkdir zeros; cp -r '%s/sample/v2/.' zeros/; "
                 "head -c %d /dev/zero > zeros/pad; "
                 "tar -C zeros -czf '%s/hello-zeros.tar.gz' bin VERSION pad",
                 env.dir, LII_BUILD_DIR, ZERO_PAD_BYTES, env.www);
        ck_assert_int_eq(system(cmd), 0);
        char path[800];
        snprintf(path, sizeof path, "%s/hello-zeros.tar.gz", env.www);
        h_sign_artifact(&env, path);

        /* Room for the download and the state, not for what it unpacks to. */
        fill(1 << 20);
        struct h_service zeros = {
            .name = "hello", .artifact = 2, .artifact_file = "hello-zeros.tar.gz"};
        long long serial = h_publish(&env, &zeros, 1, 0);
        uint64_t t = now_monotonic_usec();
        json_object *status = h_wait_status(&env, unpack_failed_for_room, NULL, 30000,
                                            "the unpacking to fail for lack of room");
        long detect_ms = ms_since(t);
        ck_assert_int_eq(h_json_int(status, "source.serial"), serial);
        json_object_put(status);
        assert_v1_kept();
        assert_liid_alive(pid);
        assert_nothing_torn();
        ck_assert_int_eq(count_events("rollout.failed", "No space left on device"), 1);
        ck_assert_int_eq(count_events("storage.failing", NULL), 1);

        /* No room at all: a newer document cannot be recorded. The state
         * file keeps the serial before, whole. */
        fill(0);
        serial = h_publish(&env, &zeros, 1, 0);
        char why[64];
        snprintf(why, sizeof why, "serial %lld not accepted", serial);
        json_object_put(h_wait_status(&env, h_source_error_mentions, why, 30000, why));
        long long failures = h_metric(&env, "lii_storage_write_failures_total");
        ck_assert_int_ge(failures, 2);
        assert_v1_kept();
        assert_liid_alive(pid);
        assert_nothing_torn();
        char state_json[800];
        snprintf(state_json, sizeof state_json, "%s/state.json", env.state_dir);
        json_object *st = json_object_from_file(state_json);
        ck_assert_ptr_nonnull(st);
        ck_assert_int_eq(h_json_int(st, "source.serial"), serial - 1);
        json_object_put(st);

        /* Room again: liid notices by itself, records the newest serial and
         * rolls it out. */
        /* While the disk was full, liid tried again, further and further
         * apart: a few attempts, not one a second. */
        int attempts = count_events("rollout.failed", "No space left on device");
        ck_assert_int_le(attempts, 8);
        ck_assert_int_eq(unlink(filler), 0);
        t = now_monotonic_usec();
        status = h_wait_status(&env, recovered_at, &serial, RECOVERY_TIMEOUT_MS,
                               "liid to recover and run the newest serial");
        long recovered_ms = ms_since(t);
        int port = (int)h_json_int(status, "services.hello.current.port");
        json_object_put(status);
        h_assert_answers(port, "v2");
        assert_liid_alive(pid);
        assert_nothing_torn();
        assert_only_unit("lii-hello@3.service");
        fault_report("name=disk-full-unpack result=old-kept detect_ms=%ld attempts_while_full=%d "
                     "recovered_ms=%ld",
                     detect_ms, attempts, recovered_ms);
        fault_report("name=disk-full-state-write result=serial-refused-state-whole "
                     "write_failures=%lld recovered_ms=%ld",
                     failures, recovered_ms);
}
END_TEST

/* ==== 2. the service manager re-executed under a rollout ==== */

static void setup_plain(void)
{
        h_setup(&env, "faults");
        h_start_liid(&env);
}

static void reexec_manager(void)
{
        const char *reexec[] = {"daemon-reexec", NULL};
        ck_assert_int_eq(h_systemctl(&env, NULL, reexec), 0);
}

/* Cuts liid's connection to the manager's bus, leaving the manager as it
 * is: a copy of liid's socket (pidfd_getfd) is shut down, which ends the
 * connection for liid too. Returns how many connections were cut. */
static int drop_bus(void)
{
        char bus_path[700];
        snprintf(bus_path, sizeof bus_path, "%s/systemd/private", env.runtime);
        int pidfd = pidfd_open(env.liid_pid, 0);
        ck_assert_int_ge(pidfd, 0);
        char dir[64];
        snprintf(dir, sizeof dir, "/proc/%d/fd", (int)env.liid_pid);
        DIR *d = opendir(dir);
        ck_assert_ptr_nonnull(d);
        int cut = 0;
        for (struct dirent *de; (de = readdir(d));) {
                if (de->d_name[0] == '.')
                        continue;
                int fd = pidfd_getfd(pidfd, atoi(de->d_name), 0);
                if (fd < 0)
                        continue;
                struct sockaddr_un sa;
                socklen_t len = sizeof sa;
                memset(&sa, 0, sizeof sa);
                if (getpeername(fd, (struct sockaddr *)&sa, &len) == 0 &&
                    sa.sun_family == AF_UNIX && strcmp(sa.sun_path, bus_path) == 0 &&
                    shutdown(fd, SHUT_RDWR) == 0)
                        cut++;
                close(fd);
        }
        closedir(d);
        close(pidfd);
        return cut;
}

static bool runs_generation_at_least(json_object *svc, void *gen)
{
        return runs_desired(svc) && h_json_int(svc, "current.generation") >= *(long long *)gen;
}

START_TEST(manager_reexec_during_rollouts)
{
        pid_t pid = env.liid_pid;
        deploy_v1();

        /* At once after the document: whatever step the rollout is at
         * (fetch, start job, first probe) loses its bus. */
        struct h_service v2 = {.name = "hello", .artifact = 2};
        h_publish(&env, &v2, 1, 0);
        uint64_t t = now_monotonic_usec();
        reexec_manager();
        h_assert_answers(port_v1, "v1");
        long long gen = 2;
        json_object *svc = h_wait_service(&env, "hello", runs_generation_at_least, &gen, 60000,
                                          "v2 after a re-exec at once");
        long first_ms = ms_since(t);
        int port = (int)h_json_int(svc, "current.port");
        char unit[128];
        snprintf(unit, sizeof unit, "lii-hello@%lld.service",
                 h_json_int(svc, "current.generation"));
        long long gen2 = h_json_int(svc, "current.generation");
        json_object_put(svc);
        h_assert_answers(port, "v2");
        assert_only_unit(unit);

        /* Twice in a row while the new instance is checked: the bus goes
         * away, comes back, goes away again. */
        struct h_service v3 = {
            .name = "hello", .artifact = 3, .extra_args = ",\"--healthy-after\",\"1500\""};
        h_publish(&env, &v3, 1, 0);
        gen = gen2 + 1;
        json_object_put(h_wait_service(&env, "hello", checking_generation, &gen, 20000,
                                       "generation 3 to be checked"));
        t = now_monotonic_usec();
        reexec_manager();
        reexec_manager();
        h_assert_answers(port, "v2");
        svc = h_wait_service(&env, "hello", runs_generation_at_least, &gen, 60000,
                             "v3 after two re-execs");
        long second_ms = ms_since(t);
        int port3 = (int)h_json_int(svc, "current.port");
        snprintf(unit, sizeof unit, "lii-hello@%lld.service",
                 h_json_int(svc, "current.generation"));
        json_object_put(svc);
        h_assert_answers(port3, "v3");
        assert_only_unit(unit);
        assert_liid_alive(pid);
        assert_nothing_torn();
        /* The bus dropped under a check, the manager untouched: liid
         * connects again and finishes. */
        struct h_service v4 = {
            .name = "hello", .artifact = 1, .extra_args = ",\"--healthy-after\",\"1500\""};
        h_publish(&env, &v4, 1, 0);
        svc = NULL;
        ck_assert_int_eq(h_api_get(&env, "/v1/services/hello", &svc), 200);
        gen = h_json_int(svc, "current.generation") + 1;
        json_object_put(svc);
        json_object_put(h_wait_service(&env, "hello", checking_generation, &gen, 20000,
                                       "generation 4 to be checked"));
        t = now_monotonic_usec();
        ck_assert_int_ge(drop_bus(), 1);
        h_assert_answers(port3, "v3");
        svc = h_wait_service(&env, "hello", runs_generation_at_least, &gen, 60000,
                             "v1 again after the bus dropped");
        long third_ms = ms_since(t);
        snprintf(unit, sizeof unit, "lii-hello@%lld.service",
                 h_json_int(svc, "current.generation"));
        h_assert_answers((int)h_json_int(svc, "current.port"), "v1");
        json_object_put(svc);
        assert_only_unit(unit);
        assert_liid_alive(pid);
        fault_report("name=manager-reexec-rollout result=completed recovered_ms=%ld", first_ms);
        fault_report("name=bus-dropped-checking result=completed recovered_ms=%ld", third_ms);
        fault_report("name=manager-reexec-twice-checking result=completed recovered_ms=%ld",
                     second_ms);
}
END_TEST

/* ==== 3. hostile HTTP sources ==== */

enum srv_mode {
        SRV_FILES,           /* serves the published folder */
        SRV_500,             /* 500 to everything */
        SRV_CHUNKED_ENDLESS, /* 200, chunked, never ends */
        SRV_SLOW_HEAD,       /* the head, one byte per second, never ends */
        SRV_REDIRECT_LOOP,   /* 302 to the same URL */
};

#define SRV_LOG_MAX      4096
#define SRV_IO_TIMEOUT   5000
#define SRV_ATTACK_LIMIT (120 * 1000) /* ms one hostile answer may last */

/* A tiny HTTP server on a thread of the test, for what nginx cannot be
 * made to do. One connection at a time; every wait is a poll() that also
 * watches the stop pipe. */
struct srv {
        int fd;
        int port;
        int stop[2];
        pthread_t thread;
        atomic_int mode;
        char attack_path[128]; /* the mode applies to this path; others get files */
        pthread_mutex_t lock;
        uint64_t at_usec[SRV_LOG_MAX]; /* when each attacked request came */
        unsigned n;
        atomic_ullong bytes_sent;
};

static struct srv srv;

static bool srv_stopping(void)
{
        struct pollfd p = {.fd = srv.stop[0], .events = POLLIN};
        return poll(&p, 1, 0) > 0;
}

/* Waits until fd is ready for events, the peer hangs up, or the test
 * stops; true only for the first. */
static bool srv_wait(int fd, short events, int timeout_ms)
{
        struct pollfd p[2] = {{.fd = fd, .events = events | POLLRDHUP},
                              {.fd = srv.stop[0], .events = POLLIN}};
        if (poll(p, 2, timeout_ms) <= 0 || p[1].revents)
                return false;
        if (p[0].revents & (POLLRDHUP | POLLHUP | POLLERR))
                return false;
        return p[0].revents & events;
}

static bool srv_send(int fd, const void *data, size_t len)
{
        const char *p = data;
        while (len > 0) {
                if (!srv_wait(fd, POLLOUT, SRV_IO_TIMEOUT))
                        return false;
                ssize_t k = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (k < 0 && (errno == EAGAIN || errno == EINTR))
                        continue;
                if (k <= 0)
                        return false;
                atomic_fetch_add(&srv.bytes_sent, (unsigned long long)k);
                p += k;
                len -= (size_t)k;
        }
        return true;
}

static bool srv_sendf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool srv_sendf(int fd, const char *fmt, ...)
{
        char buf[2048];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        return n > 0 && (size_t)n < sizeof buf && srv_send(fd, buf, (size_t)n);
}

static void srv_serve_file(int fd, const char *path)
{
        char file[1200];
        snprintf(file, sizeof file, "%s%s", env.www, path);
        int in = strstr(path, "..") ? -1 : open(file, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (in < 0 || fstat(in, &st) < 0) {
                srv_sendf(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                              "Connection: close\r\n\r\n");
                if (in >= 0)
                        close(in);
                return;
        }
        bool ok =
            srv_sendf(fd, "HTTP/1.1 200 OK\r\nContent-Length: %lld\r\nConnection: close\r\n\r\n",
                      (long long)st.st_size);
        char buf[65536];
        ssize_t k;
        while (ok && (k = read(in, buf, sizeof buf)) > 0)
                ok = srv_send(fd, buf, (size_t)k);
        close(in);
}

static void srv_attack(int fd, enum srv_mode mode, const char *path)
{
        uint64_t start = now_monotonic_usec();
        switch (mode) {
        case SRV_FILES:
                break;
        case SRV_500:
                srv_sendf(fd, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
                              "Connection: close\r\n\r\n");
                return;
        case SRV_REDIRECT_LOOP:
                srv_sendf(fd,
                          "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:%d%s\r\n"
                          "Content-Length: 0\r\nConnection: close\r\n\r\n",
                          srv.port, path);
                return;
        case SRV_CHUNKED_ENDLESS: {
                if (!srv_sendf(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                                   "Connection: close\r\n\r\n"))
                        return;
                static char chunk[8 + 65536 + 2];
                memcpy(chunk, "10000\r\n", 7);
                memset(chunk + 7, 'x', 65536);
                memcpy(chunk + 7 + 65536, "\r\n", 2);
                while (ms_since(start) < SRV_ATTACK_LIMIT && srv_send(fd, chunk, 7 + 65536 + 2))
                        ;
                return;
        }
        case SRV_SLOW_HEAD: {
                if (!srv_sendf(fd, "HTTP/1.1 200 OK\r\nX-Slow: "))
                        return;
                /* One byte a second: the wait is the pace, and the peer's
                 * hangup ends it at once. */
                while (ms_since(start) < SRV_ATTACK_LIMIT) {
                        struct pollfd p[2] = {{.fd = fd, .events = POLLRDHUP},
                                              {.fd = srv.stop[0], .events = POLLIN}};
                        if (poll(p, 2, 1000) != 0)
                                return;
                        if (!srv_send(fd, "a", 1))
                                return;
                }
                return;
        }
        }
        srv_serve_file(fd, path);
}

static void srv_handle(int fd)
{
        char req[8192];
        size_t len = 0;
        while (len < sizeof req - 1) {
                if (!srv_wait(fd, POLLIN, SRV_IO_TIMEOUT))
                        return;
                ssize_t k = recv(fd, req + len, sizeof req - 1 - len, MSG_DONTWAIT);
                if (k < 0 && (errno == EAGAIN || errno == EINTR))
                        continue;
                if (k <= 0)
                        return;
                len += (size_t)k;
                req[len] = '\0';
                if (strstr(req, "\r\n\r\n"))
                        break;
        }
        char path[512];
        if (sscanf(req, "GET %511s HTTP/1.1", path) != 1) {
                srv_sendf(fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
                return;
        }
        enum srv_mode mode = atomic_load(&srv.mode);
        pthread_mutex_lock(&srv.lock);
        bool attacked = mode != SRV_FILES && strcmp(path, srv.attack_path) == 0;
        if (attacked && srv.n < SRV_LOG_MAX)
                srv.at_usec[srv.n++] = now_monotonic_usec();
        pthread_mutex_unlock(&srv.lock);
        srv_attack(fd, attacked ? mode : SRV_FILES, path);
}

static void *srv_run(void *unused)
{
        (void)unused;
        for (;;) {
                struct pollfd p[2] = {{.fd = srv.fd, .events = POLLIN},
                                      {.fd = srv.stop[0], .events = POLLIN}};
                if (poll(p, 2, -1) < 0 && errno != EINTR)
                        return NULL;
                if (p[1].revents)
                        return NULL;
                if (!(p[0].revents & POLLIN))
                        continue;
                int fd = accept4(srv.fd, NULL, NULL, SOCK_CLOEXEC);
                if (fd < 0)
                        continue;
                srv_handle(fd);
                close(fd);
                if (srv_stopping())
                        return NULL;
        }
}

static void srv_start(void)
{
        memset(&srv, 0, sizeof srv);
        pthread_mutex_init(&srv.lock, NULL);
        srv.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(srv.fd, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t salen = sizeof sa;
        ck_assert_int_eq(bind(srv.fd, (struct sockaddr *)&sa, sizeof sa), 0);
        ck_assert_int_eq(getsockname(srv.fd, (struct sockaddr *)&sa, &salen), 0);
        ck_assert_int_eq(listen(srv.fd, 64), 0);
        srv.port = ntohs(sa.sin_port);
        ck_assert_int_eq(pipe2(srv.stop, O_CLOEXEC), 0);
        ck_assert_int_eq(pthread_create(&srv.thread, NULL, srv_run, NULL), 0);
}

static void srv_stop(void)
{
        if (srv.stop[1] <= 0)
                return;
        ck_assert_int_eq(write(srv.stop[1], "x", 1), 1);
        pthread_join(srv.thread, NULL);
        close(srv.fd);
        close(srv.stop[0]);
        close(srv.stop[1]);
        srv.stop[1] = 0;
}

/* Starts attacking path with mode; returns how many attacked requests
 * came before. */
static unsigned srv_set(enum srv_mode mode, const char *path)
{
        pthread_mutex_lock(&srv.lock);
        snprintf(srv.attack_path, sizeof srv.attack_path, "%s", path);
        atomic_store(&srv.mode, (int)mode);
        unsigned n = srv.n;
        pthread_mutex_unlock(&srv.lock);
        return n;
}

static unsigned srv_count(void)
{
        pthread_mutex_lock(&srv.lock);
        unsigned n = srv.n;
        pthread_mutex_unlock(&srv.lock);
        return n;
}

#define HOSTILE_POLL    "300ms"
#define HOSTILE_TIMEOUT "2s"
#define STORM_WINDOW_MS 10000
/* What the attacks may add to liid's resident memory. */
#define RSS_MARGIN_KIB (24 * 1024)

static void setup_hostile_server(void)
{
        h_setup(&env, "faults-http");
        srv_start();
        char url[128];
        snprintf(url, sizeof url, "http://127.0.0.1:%d/desired.json", srv.port);
        h_set_source(&env, url, HOSTILE_POLL);
        h_set_fetch_timeout(&env, HOSTILE_TIMEOUT);
        h_start_liid(&env);
}

static void teardown_hostile_server(void)
{
        h_kill_liid(&env, SIGTERM);
        srv_stop();
        h_teardown(&env);
}

/* liid's resident memory in KiB: VmRSS of /proc/pid/status. */
static long rss_kib(pid_t pid)
{
        char path[64], line[256];
        snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
        FILE *f = fopen(path, "re");
        ck_assert_ptr_nonnull(f);
        long kib = -1;
        while (fgets(line, sizeof line, f))
                if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
                        break;
        fclose(f);
        ck_assert_int_gt(kib, 0);
        return kib;
}

struct watch_error {
        const char *text;
        pid_t pid;
        long peak_kib;
};

/* The source's error mentions the text; liid's memory is sampled on the
 * way. */
static bool error_while_sampling(json_object *status, void *userdata)
{
        struct watch_error *w = userdata;
        long kib = rss_kib(w->pid);
        if (kib > w->peak_kib)
                w->peak_kib = kib;
        return h_source_error_mentions(status, (void *)w->text);
}

/* One attack on the document: waits until status says why, checks v1 and
 * the memory, lifts the attack and waits until the source is well again. */
static void document_attack(const char *name, enum srv_mode mode, const char *why, long base_kib,
                            long *peak_kib)
{
        pid_t pid = env.liid_pid;
        srv_set(mode, "/desired.json");
        uint64_t t = now_monotonic_usec();
        struct watch_error w = {.text = why, .pid = pid, .peak_kib = base_kib};
        json_object *st = h_wait_status(&env, error_while_sampling, &w, 30000, why);
        long detect_ms = ms_since(t);
        char text[256];
        said(st, text, sizeof text);
        json_object_put(st);
        ck_assert(count_events("source.refused", why) >= 1);
        assert_v1_kept();
        assert_liid_alive(pid);
        ck_assert_msg(w.peak_kib < base_kib + RSS_MARGIN_KIB,
                      "%s: liid's memory grew from %ld to %ld KiB", name, base_kib, w.peak_kib);
        if (w.peak_kib > *peak_kib)
                *peak_kib = w.peak_kib;
        srv_set(SRV_FILES, "");
        t = now_monotonic_usec();
        json_object_put(h_wait_status(&env, source_ok, NULL, 60000, "the source to be well"));
        fault_report("name=%s result=old-kept detect_ms=%ld recovered_ms=%ld rss_base_kib=%ld "
                     "rss_peak_kib=%ld status_said=%s",
                     name, detect_ms, ms_since(t), base_kib, w.peak_kib, text);
}

static int compare_long(const void *a, const void *b)
{
        long x = *(const long *)a, y = *(const long *)b;
        return (x > y) - (x < y);
}

START_TEST(hostile_http_server)
{
        pid_t pid = env.liid_pid;
        deploy_v1();
        long base_kib = rss_kib(pid), peak_kib = base_kib;

        document_attack("http-endless-chunked", SRV_CHUNKED_ENDLESS, "larger than 1048576 bytes",
                        base_kib, &peak_kib);
        document_attack("http-one-byte-per-second", SRV_SLOW_HEAD,
                        "not complete within the time limit of " HOSTILE_TIMEOUT, base_kib,
                        &peak_kib);
        document_attack("http-redirect-loop", SRV_REDIRECT_LOOP, "more than 5 redirects", base_kib,
                        &peak_kib);

        /* An artifact that never ends: the download stops at its declared
         * size, the rollout is refused, v1 serves on. */
        srv_set(SRV_CHUNKED_ENDLESS, "/hello-2.tar.gz");
        struct h_service v2 = {.name = "hello", .artifact = 2};
        h_publish(&env, &v2, 1, 0);
        uint64_t t = now_monotonic_usec();
        json_object_put(h_wait_service(&env, "hello", failed_with, "larger than the declared size",
                                       30000, "the endless artifact to be refused"));
        long detect_ms = ms_since(t);
        long kib = rss_kib(pid);
        ck_assert_msg(kib < base_kib + RSS_MARGIN_KIB, "liid's memory grew from %ld to %ld KiB",
                      base_kib, kib);
        if (kib > peak_kib)
                peak_kib = kib;
        assert_v1_kept();
        srv_set(SRV_FILES, "");
        fault_report("name=http-endless-artifact result=refused-old-kept detect_ms=%ld "
                     "rss_base_kib=%ld rss_kib=%ld",
                     detect_ms, base_kib, kib);

        /* A storm of 500s: the attempts come further apart, and not in
         * lockstep (±20%% jitter on each delay). */
        unsigned before = srv_set(SRV_500, "/desired.json");
        t = now_monotonic_usec();
        struct watch_error w = {.text = "HTTP 500", .pid = pid, .peak_kib = base_kib};
        json_object_put(h_wait_status(&env, error_while_sampling, &w, 30000, "HTTP 500"));
        uint64_t window_end = t + STORM_WINDOW_MS * USEC_PER_MSEC;
        while (now_monotonic_usec() < window_end) {
                h_assert_answers(port_v1, "v1");
                usleep(200000);
        }
        unsigned seen = srv_count() - before;
        long gaps[32];
        size_t n_gaps = 0;
        pthread_mutex_lock(&srv.lock);
        for (unsigned i = before + 1; i < srv.n && n_gaps < 32; i++)
                gaps[n_gaps++] = (long)((srv.at_usec[i] - srv.at_usec[i - 1]) / USEC_PER_MSEC);
        pthread_mutex_unlock(&srv.lock);
        /* 300 ms doubled after each failure: 0, .3, .9, 2.1, 4.5, 9.3 s
         * (±20%%); without a backoff it would be some 33 requests. */
        ck_assert_msg(seen >= 3 && seen <= 8, "%u requests in %d ms of 500s", seen,
                      STORM_WINDOW_MS);
        char gap_text[256] = "";
        size_t off = 0;
        bool jitter = false;
        long nominal = 300;
        for (size_t i = 0; i < n_gaps; i++, nominal *= 2) {
                off += (size_t)snprintf(gap_text + off, sizeof gap_text - off, "%s%ld",
                                        i ? "," : "", gaps[i]);
                ck_assert_msg(gaps[i] >= nominal * 75 / 100 && gaps[i] <= nominal * 130 / 100 + 250,
                              "gap %zu was %ld ms, the backoff says %ld ms ±20%% (gaps %s)", i,
                              gaps[i], nominal, gap_text);
                long dev = gaps[i] > nominal ? gaps[i] - nominal : nominal - gaps[i];
                jitter |= dev * 100 > nominal * 3;
        }
        ck_assert_msg(n_gaps >= 2 && jitter, "no jitter in the gaps %s", gap_text);
        ck_assert(w.peak_kib < base_kib + RSS_MARGIN_KIB);
        assert_v1_kept();
        srv_set(SRV_FILES, "");
        t = now_monotonic_usec();
        json_object_put(h_wait_status(&env, source_ok, NULL, 60000, "the source to be well"));
        fault_report("name=http-5xx-storm result=backoff-with-jitter requests=%u window_ms=%d "
                     "gaps_ms=%s recovered_ms=%ld",
                     seen, STORM_WINDOW_MS, gap_text, ms_since(t));
        assert_liid_alive(pid);
        qsort(gaps, n_gaps, sizeof gaps[0], compare_long);
        fault_report("name=http-memory result=bounded rss_base_kib=%ld rss_peak_kib=%ld "
                     "bytes_served_to_liid=%llu",
                     base_kib, peak_kib, (unsigned long long)atomic_load(&srv.bytes_sent));
}
END_TEST

/* TLS failures and a downgrade, with nginx: a certificate from a CA liid
 * does not trust, an expired one, and a redirect from https to http. */
#define NGINX_DOWNGRADE                                                                            \
        "location = /desired.json { if (-f $document_root/.downgrade) "                            \
        "{ return 302 http://localhost/desired.json; } }\n"

static void setup_nginx_tls(void)
{
        h_setup(&env, "faults-tls");
        h_serve_over_http(&env, true, HOSTILE_POLL, NGINX_DOWNGRADE);
        h_start_liid(&env);
}

/* Runs the shell script in nginx's folder and restarts nginx. */
static void nginx_certificate(const char *script)
{
        char cmd[4096];
        snprintf(cmd, sizeof cmd, "set -e; cd '%s'; %s", env.nginx.dir, script);
        ck_assert_int_eq(system(cmd), 0);
        h_nginx_restart(&env.nginx);
}

/* Another CA, then an expired certificate from the right one (issued
 * 400 days ago for 2 days, with libfaketime on openssl), then the good one
 * back. */
#define CERT_SAVE "cp server.pem good.pem; cp server.key good.key"
#define CERT_OTHER_CA                                                                              \
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "               \
        "-keyout other-ca.key -out other-ca.pem -days 2 -subj /CN=other-ca 2>/dev/null; "          \
        "openssl x509 -req -in server.csr -CA other-ca.pem -CAkey other-ca.key "                   \
        "-CAcreateserial -out server.pem -days 2 -extfile san.ext 2>/dev/null; "                   \
        "cp good.key server.key"
#define CERT_EXPIRED                                                                               \
        "LD_PRELOAD=" FAKETIME_LIB " FAKETIME=-400d openssl x509 -req -in server.csr -CA ca.pem "  \
        "-CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext 2>/dev/null; "     \
        "! openssl verify -CAfile ca.pem server.pem >/dev/null 2>&1"
#define CERT_GOOD "cp good.pem server.pem; cp good.key server.key"

static void tls_attack(const char *name, const char *cert_cmd, const char *why)
{
        pid_t pid = env.liid_pid;
        long base_kib = rss_kib(pid);
        uint64_t t = now_monotonic_usec();
        nginx_certificate(cert_cmd);
        struct watch_error w = {.text = why, .pid = pid, .peak_kib = base_kib};
        json_object *st = h_wait_status(&env, error_while_sampling, &w, 30000, why);
        long detect_ms = ms_since(t);
        char text[256];
        said(st, text, sizeof text);
        json_object_put(st);
        assert_v1_kept();
        nginx_certificate(CERT_GOOD);
        t = now_monotonic_usec();
        json_object_put(h_wait_status(&env, source_ok, NULL, 60000, "the source to be well"));
        fault_report("name=%s result=old-kept detect_ms=%ld recovered_ms=%ld status_said=%s", name,
                     detect_ms, ms_since(t), text);
        assert_liid_alive(pid);
}

START_TEST(hostile_tls_source)
{
        deploy_v1();
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "set -e; cd '%s'; " CERT_SAVE, env.nginx.dir);
        ck_assert_int_eq(system(cmd), 0);
        tls_attack("https-wrong-ca", CERT_OTHER_CA, "SSL certificate problem");
        tls_attack("https-expired-cert", CERT_EXPIRED, "certificate has expired");

        char flag[800];
        snprintf(flag, sizeof flag, "%s/.downgrade", env.www);
        int fd = open(flag, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        close(fd);
        uint64_t t = now_monotonic_usec();
        const char *why = "redirect to http://localhost/desired.json refused";
        json_object_put(h_wait_status(&env, h_source_error_mentions, (void *)why, 30000, why));
        long detect_ms = ms_since(t);
        assert_v1_kept();
        ck_assert_int_eq(unlink(flag), 0);
        t = now_monotonic_usec();
        json_object_put(h_wait_status(&env, source_ok, NULL, 60000, "the source to be well"));
        fault_report("name=https-to-http-redirect result=refused-old-kept detect_ms=%ld "
                     "recovered_ms=%ld",
                     detect_ms, ms_since(t));
        /* Still well: a newer document comes through. */
        struct h_service v2 = {.name = "hello", .artifact = 2};
        h_publish(&env, &v2, 1, 0);
        json_object_put(h_wait_generation(&env, "hello", 2));
}
END_TEST

/* ==== 4. hostile API clients ==== */

#define API_READ_GROUP   "liitest-faultsrd"
#define API_IDLE_UIDS    3
#define API_IDLE_EACH    100
#define API_RUN_MS       7000 /* beyond the 5 s request deadline */
#define API_TRY_MS       100
#define API_IDLE_TICK_MS 200
#define API_TRIES_MAX    100
#define API_BOUND_MS     1000

static gid_t api_read_gid;

static void setup_api(void)
{
        h_setup(&env, "faults-api");
        h_set_api_groups(&env, API_READ_GROUP, NULL);
        h_start_liid(&env);
}

static void become_reader(uid_t uid)
{
        if (setgroups(1, &api_read_gid) < 0 ||
            setresgid(api_read_gid, api_read_gid, api_read_gid) < 0 || setresuid(uid, uid, uid) < 0)
                _exit(10);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
}

static int api_connect(void)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        size_t len = strlen(env.socket);
        if (len >= sizeof sa.sun_path)
                return -1;
        memcpy(sa.sun_path, env.socket, len);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
                close(fd);
                return -1;
        }
        return fd;
}

struct api_report {
        unsigned connects, held_max, ended;
        unsigned requests, status_431, status_413, status_503, closed, other;
};

/* Holds up to API_IDLE_EACH connections that never send a byte, opening
 * a new one for each that liid ends. */
static void idle_clients(struct api_report *r)
{
        int fds[API_IDLE_EACH];
        for (size_t i = 0; i < API_IDLE_EACH; i++)
                fds[i] = -1;
        uint64_t start = now_monotonic_usec();
        long next_tick = 0;
        while (ms_since(start) < API_RUN_MS) {
                /* Those liid ended are opened again at the next tick, not at
                 * once: idle clients, not a storm of connections. */
                if (ms_since(start) >= next_tick) {
                        next_tick += API_IDLE_TICK_MS;
                        unsigned open = 0;
                        for (size_t i = 0; i < API_IDLE_EACH; i++) {
                                if (fds[i] < 0 && (fds[i] = api_connect()) >= 0)
                                        r->connects++;
                                open += fds[i] >= 0;
                        }
                        if (open > r->held_max)
                                r->held_max = open;
                }
                struct pollfd p[API_IDLE_EACH];
                for (size_t i = 0; i < API_IDLE_EACH; i++)
                        p[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
                long wait = next_tick - ms_since(start);
                if (poll(p, API_IDLE_EACH, wait > 0 ? (int)wait : 0) < 0 && errno != EINTR)
                        _exit(14);
                for (size_t i = 0; i < API_IDLE_EACH; i++) {
                        if (fds[i] < 0 || !p[i].revents)
                                continue;
                        char buf[64];
                        ssize_t k = recv(fds[i], buf, sizeof buf, MSG_DONTWAIT);
                        if (k > 12 && strncmp(buf, "HTTP/1.1 503", 12) == 0)
                                r->status_503++;
                        else if (k <= 0)
                                r->closed++;
                        else
                                r->other++;
                        close(fds[i]);
                        fds[i] = -1;
                        r->ended++;
                }
        }
}

/* Sends req (and then body_len bytes of body while liid takes them) and
 * classifies liid's answer. */
static void oversized_request(struct api_report *r, const char *head, size_t head_len,
                              size_t body_len)
{
        int fd = api_connect();
        if (fd < 0)
                return;
        r->requests++;
        size_t sent = 0;
        static char junk[65536];
        memset(junk, 'a', sizeof junk);
        bool ok = true;
        while (ok && sent < head_len + body_len) {
                const char *p = sent < head_len ? head + sent : junk;
                size_t n = sent < head_len ? head_len - sent : head_len + body_len - sent;
                if (n > sizeof junk)
                        n = sizeof junk;
                struct pollfd pf = {.fd = fd, .events = POLLOUT | POLLIN};
                if (poll(&pf, 1, 2000) <= 0 || (pf.revents & ~POLLOUT))
                        break;
                ssize_t k = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
                ok = k > 0 || errno == EAGAIN;
                if (k > 0)
                        sent += (size_t)k;
        }
        char answer[256] = "";
        size_t len = 0;
        for (int i = 0; i < 50 && len < sizeof answer - 1; i++) {
                struct pollfd pf = {.fd = fd, .events = POLLIN};
                if (poll(&pf, 1, 100) <= 0)
                        continue;
                ssize_t k = recv(fd, answer + len, sizeof answer - 1 - len, MSG_DONTWAIT);
                if (k <= 0)
                        break;
                len += (size_t)k;
        }
        answer[len] = '\0';
        if (strncmp(answer, "HTTP/1.1 431", 12) == 0)
                r->status_431++;
        else if (strncmp(answer, "HTTP/1.1 413", 12) == 0)
                r->status_413++;
        else if (strncmp(answer, "HTTP/1.1 503", 12) == 0)
                r->status_503++;
        else if (len == 0)
                r->closed++;
        else
                r->other++;
        close(fd);
}

static void big_headers(struct api_report *r)
{
        size_t n = 200 * 1024;
        char *head = malloc(n + 64);
        int k = snprintf(head, 64, "GET /v1/status HTTP/1.1\r\nHost: lii\r\nX-Big: ");
        memset(head + k, 'b', n);
        memcpy(head + k + n, "\r\n\r\n", 4);
        uint64_t start = now_monotonic_usec();
        while (ms_since(start) < API_RUN_MS)
                oversized_request(r, head, (size_t)k + n + 4, 0);
        free(head);
}

static void big_bodies(struct api_report *r)
{
        char head[256];
        size_t body = 8u << 20;
        int k =
            snprintf(head, sizeof head,
                     "POST /v1/sync HTTP/1.1\r\nHost: lii\r\nContent-Length: %zu\r\n\r\n", body);
        uint64_t start = now_monotonic_usec();
        while (ms_since(start) < API_RUN_MS)
                oversized_request(r, head, (size_t)k, body);
        /* Just past the limit, where liid reads and drops the body. */
        k = snprintf(head, sizeof head,
                     "POST /v1/sync HTTP/1.1\r\nHost: lii\r\nContent-Length: %d\r\n\r\n",
                     64 * 1024 + 1);
        oversized_request(r, head, (size_t)k, 64 * 1024 + 1);
}

static pid_t attacker(uid_t uid, void (*attack)(struct api_report *), int *ret_fd)
{
        int pipefd[2];
        ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                close(pipefd[0]);
                become_reader(uid);
                struct api_report r = {0};
                attack(&r);
                _exit(write(pipefd[1], &r, sizeof r) == sizeof r ? 0 : 13);
        }
        close(pipefd[1]);
        *ret_fd = pipefd[0];
        return pid;
}

static void attacker_report(pid_t pid, int fd, struct api_report *r)
{
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ck_assert_int_eq(poll(&p, 1, API_RUN_MS + 30000), 1);
        ck_assert_int_eq(read(fd, r, sizeof *r), (ssize_t)sizeof *r);
        close(fd);
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "an attacker failed: %d",
                      status);
}

START_TEST(hostile_api_clients)
{
        pid_t pid = env.liid_pid;
        deploy_v1();
        const char *status[] = {"status", NULL};
        long base[10];
        for (size_t i = 0; i < 10; i++) {
                uint64_t t = now_monotonic_usec();
                ck_assert_int_eq(h_liictl(&env, NULL, status), 0);
                base[i] = ms_since(t);
        }
        qsort(base, 10, sizeof base[0], compare_long);

        pid_t pids[API_IDLE_UIDS + 2];
        int fds[API_IDLE_UIDS + 2];
        for (int i = 0; i < API_IDLE_UIDS; i++)
                pids[i] = attacker((uid_t)(62001 + i), idle_clients, &fds[i]);
        pids[API_IDLE_UIDS] = attacker(62010, big_headers, &fds[API_IDLE_UIDS]);
        pids[API_IDLE_UIDS + 1] = attacker(62011, big_bodies, &fds[API_IDLE_UIDS + 1]);

        long took[API_TRIES_MAX];
        size_t tries = 0;
        uint64_t start = now_monotonic_usec();
        while (tries < API_TRIES_MAX && ms_since(start) < API_RUN_MS) {
                uint64_t t = now_monotonic_usec();
                char *out = NULL;
                ck_assert_int_eq(h_liictl(&env, &out, status), 0);
                took[tries] = ms_since(t);
                ck_assert_ptr_nonnull(strstr(out, "hello"));
                free(out);
                ck_assert_msg(took[tries] < API_BOUND_MS, "liictl status took %ld ms under attack",
                              took[tries]);
                tries++;
                usleep(API_TRY_MS * 1000);
        }
        struct api_report r[API_IDLE_UIDS + 2];
        for (int i = 0; i < API_IDLE_UIDS + 2; i++)
                attacker_report(pids[i], fds[i], &r[i]);
        ck_assert_uint_ge(tries, 20);
        qsort(took, tries, sizeof took[0], compare_long);

        unsigned connects = 0, held = 0, ended = 0, refused = 0, cut = 0;
        for (int i = 0; i < API_IDLE_UIDS; i++) {
                connects += r[i].connects;
                held += r[i].held_max;
                ended += r[i].ended;
                refused += r[i].status_503;
                cut += r[i].closed;
                ck_assert_uint_eq(r[i].other, 0);
        }
        /* Beyond each reader's share, refused at once; the idle ones liid
         * took were let go at the request deadline. */
        ck_assert_uint_ge(refused, 1);
        ck_assert_uint_ge(cut, 1);
        /* Hundreds of connections tried; each was held or refused, and the
         * held ones were ended by the deadline, so liid let go. */
        ck_assert_uint_ge(connects, API_IDLE_UIDS * API_IDLE_EACH);
        ck_assert_uint_ge(ended, connects - API_IDLE_UIDS * API_IDLE_EACH);
        const struct api_report *h = &r[API_IDLE_UIDS], *b = &r[API_IDLE_UIDS + 1];
        /* Each oversized request was answered with its limit (431, 413),
         * or refused at once when the shared connections were taken (503),
         * or closed; never served. */
        ck_assert_msg(h->requests >= 5 && h->other == 0 && h->status_431 >= 1,
                      "oversized headers: %u requests, %u 431, %u 503, %u closed, %u other",
                      h->requests, h->status_431, h->status_503, h->closed, h->other);
        ck_assert_msg(b->requests >= 5 && b->other == 0 && b->status_413 >= 1,
                      "oversized bodies: %u requests, %u 413, %u 503, %u closed, %u other",
                      b->requests, b->status_413, b->status_503, b->closed, b->other);
        assert_v1_kept();
        assert_liid_alive(pid);
        long rss = rss_kib(pid);
        fault_report(
            "name=api-hostile-clients result=answered liictl_status_tries=%zu "
            "median_ms=%ld p90_ms=%ld max_ms=%ld baseline_median_ms=%ld bound_ms=%d "
            "idle_clients=%d idle_open_max=%u idle_connects=%u idle_refused_503=%u idle_cut=%u "
            "big_headers=%u answered_431=%u big_bodies=%u answered_413=%u "
            "refused_503=%u liid_rss_kib=%ld",
            tries, took[tries / 2], took[tries * 9 / 10], took[tries - 1], base[5], API_BOUND_MS,
            API_IDLE_UIDS * API_IDLE_EACH, held, connects, refused, cut, h->requests, h->status_431,
            b->requests, b->status_413, h->status_503 + b->status_503, rss);
}
END_TEST

/* ==== 5. the wall clock far forward and back ==== */

/* liid under libfaketime with this offset ("+400d"), or the real clock
 * (NULL). The monotonic clock stays real, as it does when an operator or
 * a broken RTC sets the wall clock. */
static char *saved_asan_options;

/* The environment liid inherits: libfaketime with a fixed offset, or with
 * one read from a file every second. A sanitizer build of liid wants its
 * runtime first among the libraries, and is told that libfaketime comes
 * first on purpose. */
static void faketime_begin(const char *offset, const char *file)
{
        setenv("LD_PRELOAD", FAKETIME_LIB, 1);
        if (offset)
                setenv("FAKETIME", offset, 1);
        if (file) {
                setenv("FAKETIME_TIMESTAMP_FILE", file, 1);
                setenv("FAKETIME_CACHE_DURATION", "1", 1);
        }
        setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1", 1);
        setenv("FAKETIME_DONT_RESET", "1", 1);
        const char *asan = getenv("ASAN_OPTIONS");
        free(saved_asan_options);
        saved_asan_options = asan ? strdup(asan) : NULL;
        char opts[1024];
        snprintf(opts, sizeof opts, "%s%sverify_asan_link_order=0", asan ? asan : "",
                 asan && *asan ? ":" : "");
        setenv("ASAN_OPTIONS", opts, 1);
}

static void faketime_end(void)
{
        unsetenv("LD_PRELOAD");
        unsetenv("FAKETIME");
        unsetenv("FAKETIME_TIMESTAMP_FILE");
        unsetenv("FAKETIME_CACHE_DURATION");
        unsetenv("FAKETIME_DONT_FAKE_MONOTONIC");
        unsetenv("FAKETIME_DONT_RESET");
        if (saved_asan_options)
                setenv("ASAN_OPTIONS", saved_asan_options, 1);
        else
                unsetenv("ASAN_OPTIONS");
        free(saved_asan_options);
        saved_asan_options = NULL;
}

static void start_liid_at(const char *offset)
{
        if (offset)
                faketime_begin(offset, NULL);
        h_start_liid(&env);
        if (offset)
                faketime_end();
}

static void setup_clock(void)
{
        h_setup(&env, "faults-clock");
        start_liid_at(NULL);
}

/* A document that runs v(artifact) and expires days from the real now. */
static long long publish_expiring(int artifact, int days)
{
        char when[64];
        time_t at = time(NULL) + (time_t)days * 86400;
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&at));
        char sha[65];
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "sha256sum '%s/hello-%d.tar.gz'", env.www, artifact);
        FILE *p = popen(cmd, "r");
        ck_assert_ptr_nonnull(p);
        ck_assert_int_eq(fscanf(p, "%64s", sha), 1);
        pclose(p);
        char file[800];
        snprintf(file, sizeof file, "%s/hello-%d.tar.gz", env.www, artifact);
        struct stat st;
        ck_assert_int_eq(stat(file, &st), 0);
        char doc[2048];
        unsigned serial = ++env.serial;
        snprintf(doc, sizeof doc,
                 "{\"format\":\"lii.desired/1\",\"serial\":%u,\"expires\":\"%s\","
                 "\"services\":{\"hello\":{\"artifact\":{\"url\":\"hello-%d.tar.gz\","
                 "\"sha256\":\"%s\",\"size\":%lld},"
                 "\"exec\":[\"bin/hello\",\"--version-name\",\"v%d\"],"
                 "\"health\":{\"http\":\"http://127.0.0.1:${PORT}/healthz\",\"interval\":\"100ms\","
                 "\"timeout\":\"1s\",\"passes\":2,\"deadline\":\"10s\"}}}}\n",
                 serial, when, artifact, sha, (long long)st.st_size, artifact);
        h_publish_raw(&env, doc);
        return serial;
}

static bool serial_applied(json_object *status, void *serial)
{
        return h_json_int(status, "source.serial") == *(long long *)serial;
}

/* The source's last word is that this serial expired. */
static bool refused_as_expired(json_object *status, void *serial)
{
        return h_source_error_mentions(status, "expired at ") &&
               h_json_int(status, "source.refused_serial") == *(long long *)serial;
}

START_TEST(clock_forward_and_back)
{
        /* The real clock: a document that expires in 30 days runs. */
        long long s1 = publish_expiring(1, 30);
        json_object *svc = h_wait_generation(&env, "hello", 1);
        port_v1 = (int)h_json_int(svc, "current.port");
        json_object_put(svc);

        /* 400 days ahead: the applied document has expired. liid says so
         * and keeps running what it said (after the restart it reads the
         * document as a new delivery, and refuses it); a newer one that
         * expires in 30 real days is refused too. */
        h_kill_liid(&env, SIGTERM);
        start_liid_at("+400d");
        uint64_t t = now_monotonic_usec();
        json_object_put(h_wait_status(&env, refused_as_expired, &s1, 20000,
                                      "the applied document to be seen as expired"));
        long detect_ms = ms_since(t);
        assert_v1_kept();
        long long s2 = publish_expiring(2, 30);
        json_object *st = h_wait_status(&env, refused_as_expired, &s2, 20000,
                                        "the newer document to be refused as expired");
        ck_assert_int_eq(h_json_int(st, "source.serial"), s1);
        json_object_put(st);
        ck_assert_int_ge(count_events("source.refused", "expired at"), 1);
        assert_v1_kept();

        /* Back to the real clock: serial 2 is within its time by the
         * clock, but liid has seen a time after its expiry, and a clock set
         * back does not revive it. Across a restart, too. */
        h_kill_liid(&env, SIGTERM);
        start_liid_at(NULL);
        st = h_wait_status(&env, refused_as_expired, &s2, 20000,
                           "serial 2 to stay refused with the clock set back");
        ck_assert_int_eq(h_json_int(st, "source.serial"), s1);
        json_object_put(st);
        assert_v1_kept();

        /* While forward, a document that expires in 800 days is accepted,
         * which moves the high-water mark to then; back again, one that
         * expires in 30 days is refused. */
        h_kill_liid(&env, SIGTERM);
        start_liid_at("+400d");
        long long s3 = publish_expiring(2, 800);
        json_object_put(h_wait_status(&env, serial_applied, &s3, 20000, "serial 3 (800 days)"));
        json_object_put(h_wait_generation(&env, "hello", 2));
        h_kill_liid(&env, SIGTERM);
        start_liid_at(NULL);
        long long s4 = publish_expiring(1, 30);
        st = h_wait_status(&env, refused_as_expired, &s4, 20000,
                           "serial 4 to be refused after the clock went back");
        ck_assert_int_eq(h_json_int(st, "source.serial"), s3);
        json_object_put(st);

        /* What the publisher does then: a document that reaches past the
         * newest time seen is taken. */
        long long s5 = publish_expiring(1, 900);
        t = now_monotonic_usec();
        json_object_put(h_wait_status(&env, serial_applied, &s5, 20000, "serial 5 (900 days)"));
        json_object_put(h_wait_generation(&env, "hello", 3));
        long recovered_ms = ms_since(t);
        assert_nothing_torn();
        (void)s4;
        fault_report("name=clock-forward-400d result=expired-refused-old-kept detect_ms=%ld",
                     detect_ms);
        fault_report("name=clock-set-back result=high-water-mark-held recovered_ms=%ld",
                     recovered_ms);
}
END_TEST

/* The same without restarts: liid's wall clock read from a file that the
 * test rewrites (libfaketime reads it again every second). */
static char clock_file[700];

static void set_clock(const char *offset)
{
        char tmp[720];
        snprintf(tmp, sizeof tmp, "%s.new", clock_file);
        FILE *f = fopen(tmp, "we");
        ck_assert_ptr_nonnull(f);
        fprintf(f, "%s\n", offset);
        fclose(f);
        ck_assert_int_eq(rename(tmp, clock_file), 0);
}

static void setup_clock_live(void)
{
        h_setup(&env, "faults-clock-live");
        /* The file source is read again every 300 ms: the applied document
         * is judged with each new reading of the clock. */
        char url[700];
        snprintf(url, sizeof url, "file://%s/desired.json", env.www);
        h_set_source(&env, url, "300ms");
        snprintf(clock_file, sizeof clock_file, "%s/faketime", env.dir);
        set_clock("+0");
        faketime_begin(NULL, clock_file);
        h_start_liid(&env);
        faketime_end();
}

/* liid's last fetch, by its own clock, is within a day of the real now. */
static bool fetched_by_real_clock(json_object *status, void *unused)
{
        (void)unused;
        const char *at = h_json_str(status, "source.fetched_at");
        struct tm tm = {0};
        if (!at || !strptime(at, "%Y-%m-%dT%H:%M:%SZ", &tm))
                return false;
        time_t when = timegm(&tm), now = time(NULL);
        return when > now - 86400 && when < now + 86400;
}

START_TEST(clock_jumps_while_running)
{
        pid_t pid = env.liid_pid;
        long long s1 = publish_expiring(1, 30);
        json_object *svc = h_wait_generation(&env, "hello", 1);
        port_v1 = (int)h_json_int(svc, "current.port");
        json_object_put(svc);

        /* Forward: the applied document is found expired at the next
         * reading; what it says keeps running. */
        set_clock("+400d");
        uint64_t t = now_monotonic_usec();
        const char *stale = "still running what it said, waiting for a newer one";
        json_object_put(h_wait_status(&env, h_source_error_mentions, (void *)stale, 20000, stale));
        long detect_ms = ms_since(t);
        assert_v1_kept();

        /* Back: once liid reads the real time again, the applied document
         * is still expired, and a newer one that expires before the time
         * seen is refused. */
        set_clock("+0");
        json_object *st = h_wait_status(&env, fetched_by_real_clock, NULL, 20000,
                                        "liid to read the real clock again");
        ck_assert_msg(h_source_error_mentions(st, (void *)stale),
                      "the clock set back revived the expired document: %s",
                      json_object_to_json_string(st));
        json_object_put(st);
        long long s2 = publish_expiring(2, 30);
        st = h_wait_status(&env, refused_as_expired, &s2, 20000,
                           "serial 2 to be refused after the clock went back");
        ck_assert_int_eq(h_json_int(st, "source.serial"), s1);
        json_object_put(st);
        assert_v1_kept();
        assert_liid_alive(pid);
        assert_nothing_torn();
        fault_report("name=clock-jumps-while-running result=high-water-mark-held detect_ms=%ld",
                     detect_ms);
}
END_TEST

/* ==== 6. a revert whose files are gone or damaged ==== */

#define HTTP_CHECK(extra)                                                                          \
        "{\"http\":\"http://127.0.0.1:${PORT}/healthz\",\"interval\":\"200ms\",\"timeout\":"       \
        "\"1s\",\"deadline\":\"20s\"" extra "}"

/* The store's tree for the artifact of current or previous revision. */
/* The store's tree of the artifact hello runs now; it must exist. */
static void current_tree(char *out, size_t size)
{
        json_object *svc = NULL;
        ck_assert_int_eq(h_api_get(&env, "/v1/services/hello", &svc), 200);
        snprintf(out, size, "%s/store/sha256/%s", env.state_dir,
                 h_json_str(svc, "current.artifact_sha256"));
        json_object_put(svc);
        struct stat st;
        ck_assert_int_eq(stat(out, &st), 0);
}

static bool reverting_failed(json_object *svc, void *unused)
{
        (void)unused;
        const char *reason = h_json_str(svc, "last_rollout.reason");
        const char *result = h_json_str(svc, "last_rollout.result");
        return result && strcmp(result, "failed") == 0 && reason &&
               strstr(reason, "hello-1.tar.gz") && !h_json_path(svc, "next");
}

/* No new attempt within a while: the count of rollouts stays. */
static void assert_no_more_attempts(int started, int window_ms)
{
        uint64_t t = now_monotonic_usec();
        while (ms_since(t) < window_ms) {
                ck_assert_int_eq(count_events("rollout.started", NULL), started);
                usleep(250000);
        }
}

START_TEST(revert_files_removed)
{
        pid_t pid = env.liid_pid;
        deploy_v1();
        char tree[1200];
        current_tree(tree, sizeof tree);

        /* v2 passes its checks, and turns unhealthy within its watch
         * window; by then v1's files are gone from the store and from the
         * source. */
        struct h_service v2 = {.name = "hello",
                               .artifact = 2,
                               .extra_args = ",\"--unhealthy-after\",\"2500\"",
                               .health = HTTP_CHECK(",\"passes\":2,\"watch\":\"20s\"")};
        h_publish(&env, &v2, 1, 0);
        json_object *svc = h_wait_generation(&env, "hello", 2);
        int port2 = (int)h_json_int(svc, "current.port");
        json_object_put(svc);
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s.b2' '%s.sig' '%s/hello-1.tar.gz'", tree, tree,
                 tree, env.www);
        ck_assert_int_eq(system(cmd), 0);
        uint64_t t = now_monotonic_usec();
        svc = h_wait_service(&env, "hello", reverting_failed, NULL, 30000,
                             "the revert to fail for want of v1's files");
        long detect_ms = ms_since(t);
        const char *reason = h_json_str(svc, "last_rollout.reason");
        ck_assert_msg(strstr(reason, "No such file"), "the reason: %s", reason);
        char *why = strdup(reason);
        /* The current instance is alive: it stays, and answers; status
         * does not call it healthy, since it failed its watch window. */
        ck_assert_int_eq(h_json_int(svc, "current.generation"), 2);
        ck_assert(!json_object_get_boolean(h_json_path(svc, "current.healthy")));
        json_object_put(svc);
        h_assert_answers(port2, "v2");
        ck_assert(h_unit_active(&env, "lii-hello@2.service"));
        int started = count_events("rollout.started", NULL);
        int failed = count_events("rollout.failed", "hello-1.tar.gz");
        ck_assert_int_eq(failed, 1);
        assert_no_more_attempts(started, 3000);
        ck_assert_int_eq(count_events("rollout.failed", "hello-1.tar.gz"), failed);
        assert_only_unit("lii-hello@2.service");
        assert_liid_alive(pid);
        assert_nothing_torn();
        char *out = NULL;
        const char *st[] = {"status", "hello", NULL};
        ck_assert_int_eq(h_liictl(&env, &out, st), 0);
        ck_assert_msg(strstr(out, "No such file"), "liictl status hello:\n%s", out);
        free(out);
        fault_report("name=revert-files-removed result=failed-current-kept attempts=%d "
                     "detect_ms=%ld",
                     failed, detect_ms);
        free(why);
}
END_TEST

static bool rollout_failed_at(json_object *svc, void *gen)
{
        const char *result = h_json_str(svc, "last_rollout.result");
        return h_json_int(svc, "last_rollout.generation") == *(long long *)gen && result &&
               strcmp(result, "failed") == 0 && !h_json_path(svc, "next");
}

START_TEST(rollback_files_corrupted)
{
        pid_t pid = env.liid_pid;
        deploy_v1();
        char tree[1200];
        current_tree(tree, sizeof tree);
        struct h_service v2 = {.name = "hello", .artifact = 2};
        h_publish(&env, &v2, 1, 0);
        json_object *svc = h_wait_generation(&env, "hello", 2);
        int port2 = (int)h_json_int(svc, "current.port");
        json_object_put(svc);

        /* The previous revision's program is damaged in the store. */
        char cmd[8192];
        snprintf(cmd, sizeof cmd,
                 "chmod u+w '%s/bin' && printf 'garbage' > '%s/bin/hello.new' && "
                 "chmod 0755 '%s/bin/hello.new' && mv '%s/bin/hello.new' '%s/bin/hello'",
                 tree, tree, tree, tree, tree);
        ck_assert_int_eq(system(cmd), 0);
        json_object *answer = NULL;
        uint64_t t = now_monotonic_usec();
        ck_assert_int_eq(h_api_post(&env, "/v1/services/hello/rollback", &answer), 200);
        json_object_put(answer);
        long long gen = 3;
        json_object_put(
            h_wait_service(&env, "hello", rollout_failed_at, &gen, 30000, "the rollback to fail"));
        long detect_ms = ms_since(t);
        ck_assert_int_eq(h_api_get(&env, "/v1/services/hello", &svc), 200);
        ck_assert_int_eq(h_json_int(svc, "last_rollout.generation"), gen);
        ck_assert_str_eq(h_json_str(svc, "last_rollout.result"), "failed");
        const char *reason = h_json_str(svc, "last_rollout.reason");
        ck_assert_msg(reason && strstr(reason, "203/EXEC"), "the reason: %s", reason);
        char reason_copy[512];
        snprintf(reason_copy, sizeof reason_copy, "%s", reason);
        ck_assert_int_eq(h_json_int(svc, "current.generation"), 2);
        json_object_put(svc);
        h_assert_answers(port2, "v2");
        int started = count_events("rollout.started", NULL);
        assert_no_more_attempts(started, 3000);
        ck_assert_int_eq(count_events("rollout.failed", NULL), 1);
        assert_only_unit("lii-hello@2.service");
        assert_liid_alive(pid);
        assert_nothing_torn();
        for (char *c = reason_copy; *c; c++)
                if (*c == ' ')
                        *c = '_';
        fault_report("name=rollback-files-corrupted result=failed-current-kept attempts=1 "
                     "detect_ms=%ld reason=%s",
                     detect_ms, reason_copy);
}
END_TEST

/* ---- the suite ---- */

static const char *const api_groups[] = {API_READ_GROUP};

static Suite *suite(void)
{
        Suite *s = suite_create("faults");
        const struct {
                const char *name;
                const TTest *test;
                void (*setup)(void);
                void (*teardown)(void);
                int timeout;
        } tests[] = {
            {"disk-full", disk_full_unpack_and_state_write, setup_tmpfs, teardown, 240},
            {"manager-reexec", manager_reexec_during_rollouts, setup_plain, teardown, 180},
            {"hostile-http", hostile_http_server, setup_hostile_server, teardown_hostile_server,
             300},
            {"hostile-tls", hostile_tls_source, setup_nginx_tls, teardown, 180},
            {"hostile-api", hostile_api_clients, setup_api, teardown, 120},
            {"clock", clock_forward_and_back, setup_clock, teardown, 180},
            {"clock-live", clock_jumps_while_running, setup_clock_live, teardown, 120},
            {"revert-removed", revert_files_removed, setup_plain, teardown, 120},
            {"rollback-corrupted", rollback_files_corrupted, setup_plain, teardown, 120},
        };
        for (size_t i = 0; i < ELEMENTSOF(tests); i++) {
                TCase *tc = tcase_create(tests[i].name);
                tcase_add_checked_fixture(tc, tests[i].setup, tests[i].teardown);
                tcase_set_timeout(tc, tests[i].timeout);
                tcase_add_test(tc, tests[i].test);
                suite_add_tcase(s, tc);
        }
        return s;
}

int main(void)
{
        if (geteuid() != 0) {
                fprintf(stderr, "integration tests need root\n");
                return 77;
        }
        if (access(FAKETIME_LIB, R_OK) != 0) {
                fprintf(stderr, "test_faults: %s is missing (make deps installs libfaketime)\n",
                        FAKETIME_LIB);
                return EXIT_FAILURE;
        }
        if (h_groups_ensure(api_groups, ELEMENTSOF(api_groups)) < 0 || !getgrnam(API_READ_GROUP)) {
                fprintf(stderr, "test_faults: cannot create the group %s\n", API_READ_GROUP);
                return EXIT_FAILURE;
        }
        api_read_gid = getgrnam(API_READ_GROUP)->gr_gid;
        int rc = h_main(suite());
        h_groups_remove(api_groups, ELEMENTSOF(api_groups));
        return rc;
}
