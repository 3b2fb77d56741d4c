/* daemon/systemd.c against a real service manager: a private systemd user
 * manager in its own mount namespace (see design.md, "Where a real systemd
 * comes from in tests"), started once for the suite. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "systemd.h"
#include "util.h"

#define DEADLINE_MS 10000

/* The manager and the files it needs. top_dir is 0700, like /root: a
 * DynamicUser instance reaches bin_dir below it only through the read-only
 * bind mount it is given. The runtime directory is 0700 like a real
 * XDG_RUNTIME_DIR. Nothing lives under /tmp: instances with PrivateTmp=yes
 * could not see it. */
static char *top_dir;
static char *runtime_dir;
static char *bin_dir;
static char *sleep_path;
static char *bus_address;
static char *cgroup_name;
static pid_t manager_pid;

static void sleep_ms(long ms)
{
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
}

static char *mfree_str(char *p)
{
        free(p);
        return NULL;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)remove(path);
        return 0;
}

static void copy_file(const char *from, const char *to, mode_t mode)
{
        char buf[65536];
        ssize_t n;
        _cleanup_close_ int in = open(from, O_RDONLY | O_CLOEXEC);
        _cleanup_close_ int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

        ck_assert_int_ge(in, 0);
        ck_assert_int_ge(out, 0);
        while ((n = read(in, buf, sizeof buf)) > 0)
                ck_assert_int_eq(write(out, buf, (size_t)n), n);
        ck_assert_int_eq(n, 0);
        ck_assert_int_eq(fchmod(out, mode), 0);
}

static bool manager_answers(const char *socket_path)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        ck_assert_uint_lt(strlen(socket_path), sizeof sa.sun_path);
        memcpy(sa.sun_path, socket_path, strlen(socket_path));
        return fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
}

static void manager_start(void)
{
        _cleanup_free_ char *config_dir = NULL, *socket_path = NULL, *log_path = NULL;

        top_dir = xasprintf("%s/test-systemd.XXXXXX", LII_BUILD_DIR);
        ck_assert_ptr_nonnull(mkdtemp(top_dir));
        ck_assert_int_eq(chmod(top_dir, 0700), 0);
        runtime_dir = xasprintf("%s/run", top_dir);
        ck_assert_int_eq(mkdir(runtime_dir, 0700), 0);
        config_dir = xasprintf("%s/config", top_dir);
        ck_assert_int_eq(mkdir(config_dir, 0700), 0);
        bin_dir = xasprintf("%s/bin", top_dir);
        ck_assert_int_eq(mkdir(bin_dir, 0755), 0);
        sleep_path = xasprintf("%s/sleep", bin_dir);
        copy_file("/bin/sleep", sleep_path, 0755);

        socket_path = xasprintf("%s/systemd/private", runtime_dir);
        bus_address = xasprintf("unix:path=%s", socket_path);
        log_path = xasprintf("%s/manager.log", top_dir);

        cgroup_name = xasprintf("lii-test-systemd-%d", (int)getpid());
        manager_pid = fork();
        ck_assert_int_ge(manager_pid, 0);
        if (manager_pid == 0) {
                int log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (log_fd < 0 || null_fd < 0 || setsid() < 0 || dup2(null_fd, 0) < 0 ||
                    dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0)
                        _exit(127);
                h_cgroup_enter(cgroup_name);
                /* XDG_CONFIG_HOME keeps StateDirectory= (which a user
                 * manager puts there) inside the test's directory. */
                execl(LII_SOURCE_DIR "/tests/private-manager.sh", "private-manager.sh", runtime_dir,
                      config_dir, (char *)NULL);
                _exit(127);
        }

        /* The manager offers no readiness notification to a parent that is
         * not a service manager; its socket answering is the signal. */
        for (int i = 0; i < DEADLINE_MS / 50; i++) {
                int status;
                if (manager_answers(socket_path))
                        return;
                if (waitpid(manager_pid, &status, WNOHANG) == manager_pid) {
                        manager_pid = 0;
                        ck_abort_msg("systemd --user exited early, see %s", log_path);
                }
                sleep_ms(50);
        }
        ck_abort_msg("systemd --user did not answer on %s, see %s", socket_path, log_path);
}

static void manager_stop(void)
{
        if (manager_pid > 0) {
                int status;
                bool reaped = false;

                /* SIGTERM makes a user manager stop its units and exit. */
                kill(manager_pid, SIGTERM);
                for (int i = 0; i < DEADLINE_MS / 50 && !reaped; i++) {
                        reaped = waitpid(manager_pid, &status, WNOHANG) == manager_pid;
                        if (!reaped)
                                sleep_ms(50);
                }
                if (!reaped) {
                        kill(-manager_pid, SIGKILL);
                        waitpid(manager_pid, &status, 0);
                }
                manager_pid = 0;
        }
        if (cgroup_name)
                h_cgroup_remove(cgroup_name);
        cgroup_name = mfree_str(cgroup_name);
        if (top_dir)
                nftw(top_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        top_dir = mfree_str(top_dir);
        runtime_dir = mfree_str(runtime_dir);
        bin_dir = mfree_str(bin_dir);
        sleep_path = mfree_str(sleep_path);
        bus_address = mfree_str(bus_address);
}

/* Per test: a loop and a connection, plus what the callbacks saw. */

struct report {
        char unit[128];
        struct unit_status st;
};

struct job_result {
        bool done;
        int r;
        char result[256];
        uint64_t at_usec;
};

struct list_result {
        bool done;
        int r;
        size_t n;
        char names[16][128];
};

static uv_loop_t loop;
static struct systemd *sd;
static struct report reports[512];
static size_t n_reports;
static unsigned test_serial;

static void on_unit(struct systemd *m, const char *unit, const struct unit_status *st,
                    void *userdata)
{
        ck_assert_ptr_eq(m, sd);
        ck_assert_uint_lt(n_reports, ELEMENTSOF(reports));
        snprintf(reports[n_reports].unit, sizeof reports[0].unit, "%s", unit);
        reports[n_reports].st = *st;
        n_reports++;
}

static void on_job(struct systemd *m, int r, const char *result, void *userdata)
{
        struct job_result *j = userdata;

        ck_assert_ptr_eq(m, sd);
        ck_assert(!j->done);
        j->done = true;
        j->r = r;
        snprintf(j->result, sizeof j->result, "%s", result ? result : "");
        j->at_usec = now_monotonic_usec();
}

static void on_list(struct systemd *m, int r, char *const *names, void *userdata)
{
        struct list_result *l = userdata;

        l->done = true;
        l->r = r;
        for (size_t i = 0; r >= 0 && names[i]; i++)
                if (l->n < ELEMENTSOF(l->names))
                        snprintf(l->names[l->n++], sizeof l->names[0], "%s", names[i]);
}

static void setup(void)
{
        ck_assert_int_eq(uv_loop_init(&loop), 0);
        n_reports = 0;
        ck_assert_int_eq(systemd_new(&loop, bus_address, on_unit, NULL, &sd), 0);
}

static void teardown(void)
{
        sd = systemd_free(sd);
        /* The handles' memory goes in their close callbacks. */
        uv_run(&loop, UV_RUN_DEFAULT);
        ck_assert_int_eq(uv_loop_close(&loop), 0);
}

static bool timed_out;

static void on_deadline(uv_timer_t *t)
{
        timed_out = true;
}

/* Runs the loop until cond holds, for at most DEADLINE_MS. */
static bool run_until(bool (*cond)(const void *), const void *arg)
{
        uv_timer_t deadline;

        timed_out = false;
        uv_timer_init(&loop, &deadline);
        uv_timer_start(&deadline, on_deadline, DEADLINE_MS, 0);
        while (!cond(arg) && !timed_out)
                uv_run(&loop, UV_RUN_ONCE);
        uv_close((uv_handle_t *)&deadline, NULL);
        uv_run(&loop, UV_RUN_NOWAIT);
        return cond(arg);
}

static bool job_done(const void *arg)
{
        return ((const struct job_result *)arg)->done;
}

static bool list_done(const void *arg)
{
        return ((const struct list_result *)arg)->done;
}

static const struct unit_status *last_status(const char *unit)
{
        for (size_t i = n_reports; i > 0; i--)
                if (strcmp(reports[i - 1].unit, unit) == 0)
                        return &reports[i - 1].st;
        return NULL;
}

static bool unit_running(const void *arg)
{
        const struct unit_status *st = last_status(arg);
        return st && st->loaded && strcmp(st->active_state, "active") == 0 && st->main_pid > 0;
}

static bool unit_gone_or_inactive(const void *arg)
{
        const struct unit_status *st = last_status(arg);
        return st && (!st->loaded || strcmp(st->active_state, "inactive") == 0) &&
               st->main_pid == 0;
}

static bool unit_exited_1(const void *arg)
{
        for (size_t i = 0; i < n_reports; i++) {
                const struct unit_status *st = &reports[i].st;
                if (strcmp(reports[i].unit, arg) == 0 && st->exec_main_code == CLD_EXITED &&
                    st->exec_main_status == 1 &&
                    (strcmp(st->active_state, "failed") == 0 ||
                     strcmp(st->active_state, "inactive") == 0))
                        return true;
        }
        return false;
}

static bool any_report(const void *arg)
{
        return last_status(arg) != NULL;
}

static void unit_name(char *buf, size_t size, const char *what)
{
        snprintf(buf, size, "lii-t%d-%s@%u.service", (int)getpid(), what, ++test_serial);
}

static void start_and_wait(const struct transient_unit *u, struct job_result *job)
{
        ck_assert_int_eq(systemd_start_transient(sd, u, on_job, job), 0);
        ck_assert_msg(!job->done, "job callback ran synchronously");
        ck_assert_msg(run_until(job_done, job), "no JobRemoved for the start of %s", u->name);
}

static void stop_and_wait(const char *unit)
{
        struct job_result job = {0};

        ck_assert_int_eq(systemd_stop_unit(sd, unit, on_job, &job), 0);
        ck_assert_msg(!job.done, "job callback ran synchronously");
        ck_assert_msg(run_until(job_done, &job), "no JobRemoved for the stop of %s", unit);
        ck_assert_msg(job.r == 0, "stop %s: %d %s", unit, job.r, job.result);
}

/* Reads properties as systemctl shows them: an independent view of what the
 * manager made of the transient unit. --all because empty values (such as
 * an empty CapabilityBoundingSet=) are left out otherwise. */
static char *systemctl_show(const char *unit)
{
        _cleanup_free_ char *cmd = NULL;
        char line[4096];
        size_t size = 0;
        char *out = NULL;
        FILE *f, *p;

        cmd = xasprintf("XDG_RUNTIME_DIR='%s' systemctl --user show --all '%s'", runtime_dir, unit);
        f = open_memstream(&out, &size);
        ck_assert_ptr_nonnull(f);
        fputc('\n', f);
        p = popen(cmd, "re");
        ck_assert_ptr_nonnull(p);
        while (fgets(line, sizeof line, p))
                fputs(line, f);
        ck_assert_int_eq(pclose(p), 0);
        fclose(f);
        return out;
}

static void assert_property(const char *show, const char *expected)
{
        char needle[512];
        snprintf(needle, sizeof needle, "\n%s\n", expected);
        ck_assert_msg(strstr(show, needle), "systemctl show lacks \"%s\"", expected);
}

START_TEST(test_sandboxed_unit_lifecycle)
{
        char name[128], proc[64], line[256], prefix[64];
        char *argv[] = {(char *)"/run/lii/artifact/sleep", (char *)"1000", NULL};
        char *env[] = {(char *)"GREETING=hi", (char *)"PORT=1234", NULL};
        struct bind_path bind = {.source = bin_dir, .destination = "/run/lii/artifact"};
        char *tmpfs[] = {(char *)"/run/lii", NULL};
        _cleanup_free_ char *config_dir = xasprintf("-%s/config", top_dir);
        char *hidden[] = {config_dir, (char *)"-/nonexistent/lii", NULL};
        char *fields[] = {(char *)"LII_SERVICE=test", (char *)"LII_GENERATION=7", NULL};
        struct job_result job = {0};
        struct list_result list = {0}, none = {0};
        const struct unit_status *st;
        _cleanup_free_ char *show = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        bool found = false, checked_uid = false;

        unit_name(name, sizeof name, "sandbox");
        struct transient_unit u = {
            .name = name,
            .description = "lii test",
            .slice = "lii.slice",
            .argv = argv,
            .working_directory = "/run/lii/artifact",
            .environment = env,
            .timeout_stop_usec = 5 * USEC_PER_SEC,
            .memory_max = 64ULL << 20,
            .cpu_quota_per_sec_usec = 500000,
            .tasks_max = 16,
            .state_directory = "lii/test",
            .sandbox_strict = true,
            .bind_read_only = &bind,
            .n_bind_read_only = 1,
            .temporary_file_systems = tmpfs,
            .inaccessible_paths = hidden,
            .log_extra_fields = fields,
        };

        ck_assert(!systemd_is_system(sd));
        ck_assert_int_eq(systemd_watch_unit(sd, name), 0);
        start_and_wait(&u, &job);
        ck_assert_msg(job.r == 0, "start: %d %s", job.r, job.result);
        ck_assert_str_eq(job.result, "done");
        ck_assert_msg(run_until(unit_running, name), "%s never reported active", name);
        st = last_status(name);
        ck_assert_str_eq(st->sub_state, "running");
        ck_assert_uint_gt(st->active_enter_usec, 0);

        show = systemctl_show(name);
        static const char *const expected[] = {
            "Type=exec",
            "Slice=lii.slice",
            "Description=lii test",
            "DynamicUser=yes",
            "ProtectSystem=strict",
            "NoNewPrivileges=yes",
            "PrivateTmp=yes",
            "PrivateDevices=yes",
            "ProtectKernelModules=yes",
            "ProtectControlGroups=yes",
            "RestrictNamespaces=yes",
            "LockPersonality=yes",
            "RestrictRealtime=yes",
            "RestrictSUIDSGID=yes",
            "ProtectClock=yes",
            "ProtectHostname=yes",
            "SystemCallArchitectures=native",
            "CapabilityBoundingSet=",
            "UMask=0077",
            "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
            "MemoryMax=67108864",
            "TasksMax=16",
            "CPUQuotaPerSecUSec=500ms",
            "TimeoutStopUSec=5s",
            "StateDirectory=lii/test",
            "Environment=GREETING=hi PORT=1234",
            "CollectMode=inactive-or-failed",
            /* A user manager cannot set up ProtectHome=yes and the kernel
             * protections, so they are left out there; DynamicUser= still
             * implies ProtectHome=read-only. */
            "ProtectHome=read-only",
            "ProtectKernelTunables=no",
            "ProtectKernelLogs=no",
        };
        for (size_t i = 0; i < ELEMENTSOF(expected); i++)
                assert_property(show, expected[i]);
        assert_property(show, "WorkingDirectory=/run/lii/artifact");
        assert_property(show, "TemporaryFileSystem=/run/lii:ro");
        assert_property(show, "LogExtraFields=LII_SERVICE=test LII_GENERATION=7");
        _cleanup_free_ char *bound =
            xasprintf("BindReadOnlyPaths=%s:/run/lii/artifact:rbind", bin_dir);
        assert_property(show, bound);
        _cleanup_free_ char *inaccessible =
            xasprintf("InaccessiblePaths=%s -/nonexistent/lii", config_dir);
        assert_property(show, inaccessible);

        /* DynamicUser: the instance does not run as root. */
        snprintf(proc, sizeof proc, "/proc/%u/status", st->main_pid);
        f = fopen(proc, "re");
        ck_assert_ptr_nonnull(f);
        while (fgets(line, sizeof line, f))
                if (strncmp(line, "Uid:", 4) == 0) {
                        ck_assert_msg(strtoul(line + 4, NULL, 10) != 0, "instance runs as root");
                        checked_uid = true;
                }
        ck_assert(checked_uid);

        snprintf(prefix, sizeof prefix, "lii-t%d-", (int)getpid());
        ck_assert_int_eq(systemd_list_units(sd, prefix, on_list, &list), 0);
        ck_assert(run_until(list_done, &list));
        ck_assert_int_eq(list.r, 0);
        for (size_t i = 0; i < list.n; i++)
                found = found || strcmp(list.names[i], name) == 0;
        ck_assert_msg(found, "list_units(%s) misses %s", prefix, name);
        ck_assert_int_eq(systemd_list_units(sd, "lii-nothing-matches-", on_list, &none), 0);
        ck_assert(run_until(list_done, &none));
        ck_assert_int_eq(none.r, 0);
        ck_assert_uint_eq(none.n, 0);

        stop_and_wait(name);
        ck_assert_msg(run_until(unit_gone_or_inactive, name), "%s never reported stopped", name);
        systemd_unwatch_unit(sd, name);
}
END_TEST

START_TEST(test_failing_unit_reports_exit_status)
{
        char name[128];
        char *argv[] = {(char *)"/bin/false", NULL};
        struct job_result job = {0};
        struct transient_unit u = {
            .name = name, .slice = "lii.slice", .argv = argv, .sandbox_strict = true};

        unit_name(name, sizeof name, "false");
        /* Watching first: the failed unit is collected right away, and its
         * final state arrives only as a change signal. */
        ck_assert_int_eq(systemd_watch_unit(sd, name), 0);
        start_and_wait(&u, &job);
        /* With Type=exec the start job is done once the binary was executed,
         * but systemd 252 may see the exit first and fail the job: both
         * happen, so only the job's completion is asserted here. */
        ck_assert_msg(job.r == 0 || (job.r == -EIO && strcmp(job.result, "failed") == 0),
                      "start: %d %s", job.r, job.result);
        ck_assert_msg(run_until(unit_exited_1, name), "%s never reported exit status 1", name);
        ck_assert_msg(run_until(unit_gone_or_inactive, name), "%s never reported gone", name);
}
END_TEST

START_TEST(test_stop_unknown_unit_succeeds)
{
        char name[128];
        unit_name(name, sizeof name, "unknown");
        stop_and_wait(name);
}
END_TEST

START_TEST(test_watch_unknown_unit_reports_not_loaded)
{
        char name[128];
        const struct unit_status *st;

        unit_name(name, sizeof name, "unwatched");
        ck_assert_int_eq(systemd_watch_unit(sd, name), 0);
        ck_assert(run_until(any_report, name));
        st = last_status(name);
        ck_assert(!st->loaded);
        ck_assert_str_eq(st->active_state, "inactive");
        ck_assert_uint_eq(st->main_pid, 0);
        systemd_unwatch_unit(sd, name);
}
END_TEST

static size_t reports_of(const char *unit)
{
        size_t n = 0;
        for (size_t i = 0; i < n_reports; i++)
                n += strcmp(reports[i].unit, unit) == 0;
        return n;
}

struct reports_since {
        const char *unit;
        size_t n;
};

static bool new_report(const void *arg)
{
        const struct reports_since *since = arg;
        return reports_of(since->unit) > since->n;
}

/* Watches are kept sorted by unit name: watched and unwatched out of that
 * order, each unit's changes still reach its own watch, and none reach a
 * watch that is gone. */
START_TEST(test_watches_in_any_order)
{
        static const char *const whats[] = {"c", "a", "e", "b", "d"};
        char names[ELEMENTSOF(whats)][128];
        char *argv[] = {sleep_path, (char *)"1000", NULL};

        for (size_t i = 0; i < ELEMENTSOF(whats); i++) {
                unit_name(names[i], sizeof names[i], whats[i]);
                ck_assert_int_eq(systemd_watch_unit(sd, names[i]), 0);
        }
        for (size_t i = 0; i < ELEMENTSOF(whats); i++)
                ck_assert_msg(run_until(any_report, names[i]), "%s never reported", names[i]);
        /* "c" goes from the middle, "d" from the end. */
        systemd_unwatch_unit(sd, names[0]);
        systemd_unwatch_unit(sd, names[4]);
        size_t before_c = reports_of(names[0]), before_d = reports_of(names[4]);

        for (size_t i = 0; i < ELEMENTSOF(whats); i++) {
                struct job_result job = {0};
                struct transient_unit u = {.name = names[i], .slice = "lii.slice", .argv = argv};
                start_and_wait(&u, &job);
                ck_assert_msg(job.r == 0, "start %s: %d %s", names[i], job.r, job.result);
        }
        for (size_t i = 1; i <= 3; i++)
                ck_assert_msg(run_until(unit_running, names[i]), "%s never reported active",
                              names[i]);
        for (size_t i = 0; i < ELEMENTSOF(whats); i++)
                stop_and_wait(names[i]);
        for (size_t i = 1; i <= 3; i++)
                ck_assert_msg(run_until(unit_gone_or_inactive, names[i]),
                              "%s never reported stopped", names[i]);
        ck_assert_uint_eq(reports_of(names[0]), before_c);
        ck_assert_uint_eq(reports_of(names[4]), before_d);

        /* Watching again after an unwatch starts afresh. */
        ck_assert_int_eq(systemd_watch_unit(sd, names[0]), 0);
        struct reports_since since = {.unit = names[0], .n = before_c};
        ck_assert_msg(run_until(new_report, &since), "%s not reported once watched again",
                      names[0]);
        ck_assert(unit_gone_or_inactive(names[0]));
        for (size_t i = 0; i < 4; i++)
                systemd_unwatch_unit(sd, names[i]);
}
END_TEST

START_TEST(test_duplicate_name_fails)
{
        char name[128];
        char *argv[] = {sleep_path, (char *)"1000", NULL};
        struct job_result first = {0}, second = {0};
        struct transient_unit u = {.name = name, .slice = "lii.slice", .argv = argv};

        unit_name(name, sizeof name, "dup");
        start_and_wait(&u, &first);
        ck_assert_msg(first.r == 0, "start: %d %s", first.r, first.result);
        start_and_wait(&u, &second);
        ck_assert_int_eq(second.r, -EEXIST);
        ck_assert_msg(strstr(second.result, name), "error message \"%s\" does not name the unit",
                      second.result);
        stop_and_wait(name);
}
END_TEST

START_TEST(test_notify_unit_waits_for_ready)
{
        char name[128];
        /* READY=1 comes from a grandchild of the main process, as from a
         * wrapper script: only NotifyAccess=all lets it through (systemd-notify
         * vouches for its parent, here the inner shell, not the main PID). */
        char *argv[] = {(char *)"/bin/sh", (char *)"-c",
                        (char *)"sleep 0.5; sh -c 'systemd-notify --ready; true'; exec sleep 1000",
                        NULL};
        struct job_result job = {0};
        struct transient_unit u = {
            .name = name, .slice = "lii.slice", .argv = argv, .notify = true};
        uint64_t started;

        unit_name(name, sizeof name, "notify");
        ck_assert_int_eq(systemd_watch_unit(sd, name), 0);
        started = now_monotonic_usec();
        start_and_wait(&u, &job);
        ck_assert_msg(job.r == 0, "start: %d %s", job.r, job.result);
        /* The job ends with READY=1, not when the process was started. */
        ck_assert_uint_ge(job.at_usec - started, 400 * USEC_PER_MSEC);
        ck_assert_msg(run_until(unit_running, name), "%s never reported active", name);
        stop_and_wait(name);
}
END_TEST

START_TEST(test_notify_unit_without_ready_fails)
{
        char name[128];
        char *argv[] = {(char *)"/bin/true", NULL};
        struct job_result job = {0};
        struct transient_unit u = {
            .name = name, .slice = "lii.slice", .argv = argv, .notify = true};

        unit_name(name, sizeof name, "noready");
        start_and_wait(&u, &job);
        ck_assert_int_lt(job.r, 0);
        ck_assert_str_eq(job.result, "failed");
}
END_TEST

START_TEST(test_invalid_arguments_call_nothing_back)
{
        char *argv[] = {(char *)"relative/path", NULL};
        struct job_result job = {0};
        struct transient_unit u = {.name = "lii-x@1.service", .argv = argv};

        ck_assert_int_eq(systemd_start_transient(sd, &u, on_job, &job), -EINVAL);
        ck_assert_int_eq(systemd_stop_unit(sd, "", on_job, &job), -EINVAL);
        uv_run(&loop, UV_RUN_NOWAIT);
        ck_assert(!job.done);
}
END_TEST

/* The manager on a bus daemon, as with bus = system: the user manager's own
 * dbus-daemon (socket-activated at $XDG_RUNTIME_DIR/bus) stands in for the
 * system bus. This exercises Hello, sender-filtered matches and Subscribe. */
START_TEST(test_via_bus_daemon)
{
        char name[128];
        char *argv[] = {sleep_path, (char *)"1000", NULL};
        struct job_result job = {0};
        struct transient_unit u = {.name = name, .slice = "lii.slice", .argv = argv};
        _cleanup_free_ char *address = xasprintf("unix:path=%s/bus", runtime_dir);

        sd = systemd_free(sd);
        ck_assert_int_eq(systemd_new(&loop, address, on_unit, NULL, &sd), 0);
        ck_assert(!systemd_is_system(sd));
        unit_name(name, sizeof name, "busd");
        ck_assert_int_eq(systemd_watch_unit(sd, name), 0);
        start_and_wait(&u, &job);
        ck_assert_msg(job.r == 0, "start: %d %s", job.r, job.result);
        ck_assert_msg(run_until(unit_running, name), "%s never reported active", name);
        stop_and_wait(name);
        ck_assert_msg(run_until(unit_gone_or_inactive, name), "%s never reported stopped", name);
}
END_TEST

struct disconnect_result {
        unsigned calls;
        int r;
};

static void on_disconnect(struct systemd *m, int r, const char *reason, void *userdata)
{
        struct disconnect_result *d = userdata;
        ck_assert_ptr_nonnull(reason);
        d->calls++;
        d->r = r;
}

static bool disconnected(const void *arg)
{
        return ((const struct disconnect_result *)arg)->calls > 0;
}

/* A peer that accepts nothing and then goes away, as a crashed manager
 * would: the pending job fails with -ENOTCONN, the owner is told once, and
 * later calls are refused instead of waiting forever. */
START_TEST(test_lost_connection_fails_pending_jobs)
{
        _cleanup_free_ char *dir = xasprintf("%s/fake", top_dir);
        _cleanup_free_ char *sdir = xasprintf("%s/fake/systemd", top_dir);
        _cleanup_free_ char *path = xasprintf("%s/fake/systemd/private", top_dir);
        _cleanup_free_ char *address = xasprintf("unix:path=%s", path);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        struct disconnect_result d = {0};
        struct job_result job = {0}, late = {0};
        int fd;

        ck_assert_int_eq(mkdir(dir, 0700), 0);
        ck_assert_int_eq(mkdir(sdir, 0700), 0);
        ck_assert_uint_lt(strlen(path), sizeof sa.sun_path);
        memcpy(sa.sun_path, path, strlen(path));
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        ck_assert_int_eq(listen(fd, 4), 0);

        sd = systemd_free(sd);
        ck_assert_int_eq(systemd_new(&loop, address, on_unit, NULL, &sd), 0);
        systemd_set_disconnect_cb(sd, on_disconnect, &d);
        ck_assert_int_eq(systemd_stop_unit(sd, "lii-x@1.service", on_job, &job), 0);
        uv_run(&loop, UV_RUN_NOWAIT);
        /* Closing the listener resets the connection it never accepted. */
        close(fd);
        ck_assert(run_until(disconnected, &d));
        ck_assert_uint_eq(d.calls, 1);
        ck_assert_int_lt(d.r, 0);
        ck_assert(job.done);
        ck_assert_int_eq(job.r, -ENOTCONN);
        ck_assert_int_eq(systemd_stop_unit(sd, "lii-x@1.service", on_job, &late), -ENOTCONN);
        ck_assert_int_eq(systemd_watch_unit(sd, "lii-x@1.service"), -ENOTCONN);
        uv_run(&loop, UV_RUN_NOWAIT);
        ck_assert(!late.done);
        ck_assert_uint_eq(d.calls, 1);
}
END_TEST

static void on_list_free(struct systemd *m, int r, char *const *names, void *userdata)
{
        struct list_result *l = userdata;
        l->done = true;
        l->r = r;
        sd = systemd_free(m);
}

/* The owner may drop the connection from inside a callback (liid does on
 * shutdown); nothing is called back afterwards. */
START_TEST(test_free_from_callback)
{
        char name[128];
        struct list_result list = {0};
        struct job_result job = {0};

        unit_name(name, sizeof name, "freed");
        ck_assert_int_eq(systemd_list_units(sd, "lii-", on_list_free, &list), 0);
        ck_assert_int_eq(systemd_stop_unit(sd, name, on_job, &job), 0);
        ck_assert_int_eq(systemd_watch_unit(sd, name), 0);
        ck_assert(run_until(list_done, &list));
        ck_assert_int_eq(list.r, 0);
        ck_assert_ptr_null(sd);
        uv_run(&loop, UV_RUN_DEFAULT);
        ck_assert(!job.done);
        ck_assert(!any_report(name));
}
END_TEST

static Suite *systemd_suite(void)
{
        Suite *s = suite_create("systemd");
        TCase *tc = tcase_create("private user manager");

        tcase_add_unchecked_fixture(tc, manager_start, manager_stop);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_sandboxed_unit_lifecycle);
        tcase_add_test(tc, test_failing_unit_reports_exit_status);
        tcase_add_test(tc, test_stop_unknown_unit_succeeds);
        tcase_add_test(tc, test_watch_unknown_unit_reports_not_loaded);
        tcase_add_test(tc, test_watches_in_any_order);
        tcase_add_test(tc, test_duplicate_name_fails);
        tcase_add_test(tc, test_notify_unit_waits_for_ready);
        tcase_add_test(tc, test_notify_unit_without_ready_fails);
        tcase_add_test(tc, test_invalid_arguments_call_nothing_back);
        tcase_add_test(tc, test_via_bus_daemon);
        tcase_add_test(tc, test_lost_connection_fails_pending_jobs);
        tcase_add_test(tc, test_free_from_callback);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr;
        int failed;

        if (geteuid() != 0) {
                printf("test_systemd: skipped, starting a private systemd manager needs root\n");
                return 0;
        }
        sr = srunner_create(systemd_suite());
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? 1 : 0;
}
