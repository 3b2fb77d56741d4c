/* liid refuses at start a configuration whose folders cannot work, before
 * it touches anything else: it exits with status 2 and says which key, which
 * path and why. Each case runs the real liid binary the way systemd would,
 * in a mount namespace of the test's own, so that it can mount file systems
 * noexec or read-only. */
#include <check.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "util.h"

static char dir[512];
static char mounted[2][600];

/* Every case has its own folder and mount namespace (Check runs each test
 * in a process of its own), so a mount ends with the test. */
static void setup(void)
{
        const char *name = tcase_name();
        /* Under /run, not the build folder: liid runs here also as root
         * without the capabilities that pass over permissions, and a build
         * under a 0700 folder (/root, a home) would be out of its reach. */
        snprintf(dir, sizeof dir, "/run/lii-itest-startup-%s.%d", name ? name : "x", getpid());
        char cmd[1100];
        snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p -m 0755 '%s'", dir, dir);
        ck_assert_int_eq(system(cmd), 0);
        ck_assert_int_eq(unshare(CLONE_NEWNS), 0);
        ck_assert_int_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
        memset(mounted, 0, sizeof mounted);
}

static void teardown(void)
{
        for (size_t i = 0; i < ELEMENTSOF(mounted); i++)
                if (mounted[i][0])
                        umount2(mounted[i], MNT_DETACH);
        if (!getenv("LII_KEEP_TEST_DIR")) {
                char cmd[600];
                snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
                ck_assert_int_eq(system(cmd), 0);
        }
}

/* dir/NAME, in a static buffer of its own per slot. */
static const char *at(int slot, const char *name)
{
        static char paths[4][700];
        snprintf(paths[slot], sizeof paths[slot], "%s/%s", dir, name);
        return paths[slot];
}

/* Mounts an empty tmpfs with these options at dir/NAME. */
static void mount_tmpfs(const char *name, unsigned long flags)
{
        size_t i = mounted[0][0] ? 1 : 0;
        snprintf(mounted[i], sizeof mounted[i], "%s/%s", dir, name);
        ck_assert_int_eq(mkdir(mounted[i], 0755), 0);
        ck_assert_msg(mount("tmpfs", mounted[i], "tmpfs", flags, "mode=0755") == 0, "mount %s: %m",
                      mounted[i]);
}

enum {
        AS_ROOT,
        /* root as liid.service runs it: without the capabilities that pass
         * over file permissions (its bounding set keeps only CAP_CHOWN). */
        AS_SERVICE_ROOT,
};

/* Runs liid with these flags after "-c /dev/null" (no configuration file,
 * unless the flags name one) and a bus where nothing answers, so that a liid that accepts its
 * folders stops at connecting to systemd (exit 1) instead of running.
 * Returns the exit status; *ret_err gets what liid wrote on stderr. */
static int run_liid(int as, char **ret_err, const char *const *flags)
{
        char bus[700];
        snprintf(bus, sizeof bus, "unix:path=%s/no-bus", dir);
        const char *argv[32] = {LII_BUILD_DIR "/liid", "-c", "/dev/null", "--bus", bus};
        size_t n = 5;
        for (; *flags && n < ELEMENTSOF(argv) - 1; flags++)
                argv[n++] = *flags;
        argv[n] = NULL;

        char errpath[700];
        snprintf(errpath, sizeof errpath, "%s/liid.stderr", dir);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                dup2(fd, STDERR_FILENO);
                unsetenv("NOTIFY_SOCKET");
                unsetenv("LISTEN_FDS");
                unsetenv("JOURNAL_STREAM");
                if (as == AS_SERVICE_ROOT) {
                        const int drop[] = {CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER};
                        for (size_t i = 0; i < ELEMENTSOF(drop); i++)
                                if (prctl(PR_CAPBSET_DROP, drop[i], 0, 0, 0) < 0)
                                        _exit(126);
                }
                execv(argv[0], (char *const *)argv);
                _exit(127);
        }
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status), "liid ended by signal %d", WTERMSIG(status));
        FILE *f = fopen(errpath, "re");
        ck_assert_ptr_nonnull(f);
        char *text = NULL;
        size_t len = 0;
        ck_assert_int_ge(getdelim(&text, &len, '\0', f), 0);
        fclose(f);
        *ret_err = text;
        return WEXITSTATUS(status);
}

/* liid exits with status 2 and its message contains every one of the texts. */
static void assert_refused(int as, const char *const *flags, const char *const *texts)
{
        char *err = NULL;
        int rc = run_liid(as, &err, flags);
        ck_assert_msg(rc == 2, "liid exited %d, not 2; it said: %s", rc, err);
        for (; *texts; texts++)
                ck_assert_msg(strstr(err, *texts), "liid's message lacks \"%s\": %s", *texts, err);
        free(err);
}

static const char *quoted(const char *path)
{
        static char q[4][720];
        static unsigned next;
        char *s = q[next++ % ELEMENTSOF(q)];
        snprintf(s, sizeof q[0], "'%s'", path);
        return s;
}

START_TEST(usable_folders_pass)
{
        /* The control: new folders, several levels deep, are made, and liid
         * goes on with its start until it looks for systemd. The socket is
         * in /run, as a deep build folder could make its path too long. */
        const char *state = at(0, "new/deeper/state");
        char socket_dir[64], socket[96];
        snprintf(socket_dir, sizeof socket_dir, "/run/lii-startup.%d", getpid());
        snprintf(socket, sizeof socket, "%s/sub/liid.sock", socket_dir);
        const char *conf = at(1, "liid.conf");
        FILE *f = fopen(conf, "we");
        ck_assert_ptr_nonnull(f);
        fprintf(f, "[source]\nrequire_signature = no\n");
        fclose(f);
        char *err = NULL;
        int rc =
            run_liid(AS_ROOT, &err,
                     (const char *[]){"-c", conf, "--state-dir", state, "--socket", socket, NULL});
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", socket_dir);
        ck_assert_int_eq(system(cmd), 0);
        ck_assert_msg(rc == 1, "liid exited %d, not 1; it said: %s", rc, err);
        ck_assert_msg(strstr(err, "Failed to connect to systemd"), "%s", err);
        free(err);
        struct stat st;
        ck_assert_int_eq(stat(at(2, "new/deeper"), &st), 0);
        ck_assert_int_eq(st.st_mode & 07777, 0755);
        ck_assert_int_eq(stat(state, &st), 0);
        ck_assert(S_ISDIR(st.st_mode));
}
END_TEST

START_TEST(relative_state_dir)
{
        assert_refused(AS_ROOT, (const char *[]){"--state-dir", "var/lib/lii", NULL},
                       (const char *[]){"--state-dir: state_dir: 'var/lib/lii' is not an "
                                        "absolute path",
                                        NULL});
}
END_TEST

START_TEST(state_dir_on_noexec_mount)
{
        mount_tmpfs("noexec", MS_NOEXEC);
        const char *state = at(0, "noexec/lii");
        assert_refused(AS_ROOT, (const char *[]){"--state-dir", state, NULL},
                       (const char *[]){"state_dir: ", quoted(state), "mounted noexec", NULL});
        /* The same when the folder exists already. */
        ck_assert_int_eq(mkdir(state, 0755), 0);
        assert_refused(AS_ROOT, (const char *[]){"--state-dir", state, NULL},
                       (const char *[]){"state_dir: ", quoted(state), "mounted noexec", NULL});
}
END_TEST

START_TEST(state_dir_on_read_only_mount)
{
        mount_tmpfs("ro", MS_RDONLY);
        const char *state = at(0, "ro/lii");
        assert_refused(AS_ROOT, (const char *[]){"--state-dir", state, NULL},
                       (const char *[]){"state_dir: ", quoted(state), "cannot be created",
                                        quoted(at(1, "ro")), "Read-only file system",
                                        "ReadWritePaths=", NULL});
        const char *deeper = at(2, "ro/a/lii");
        assert_refused(AS_ROOT, (const char *[]){"--state-dir", deeper, NULL},
                       (const char *[]){"state_dir: ", quoted(deeper), "cannot be created",
                                        quoted(at(1, "ro/a")), "Read-only file system", NULL});
}
END_TEST

START_TEST(state_dir_under_a_file)
{
        ck_assert_int_eq(close(creat(at(1, "file"), 0644)), 0);
        const char *state = at(0, "file/lii");
        assert_refused(AS_ROOT, (const char *[]){"--state-dir", state, NULL},
                       (const char *[]){"state_dir: ", quoted(state), "cannot be created: ",
                                        quoted(at(1, "file")), " is not a folder", NULL});
        assert_refused(
            AS_ROOT, (const char *[]){"--state-dir", at(1, "file"), NULL},
            (const char *[]){"state_dir: ", quoted(at(1, "file")), " is not a folder", NULL});
}
END_TEST

START_TEST(state_dir_in_another_users_folder)
{
        const char *theirs = at(1, "theirs");
        ck_assert_int_eq(mkdir(theirs, 0755), 0);
        ck_assert_int_eq(chown(theirs, 65534, 65534), 0);
        const char *state = at(0, "theirs/lii");
        assert_refused(AS_SERVICE_ROOT, (const char *[]){"--state-dir", state, NULL},
                       (const char *[]){"state_dir: ", quoted(state), "cannot be created",
                                        quoted(theirs), "Permission denied", NULL});
}
END_TEST

START_TEST(state_dir_owned_by_another_user)
{
        const char *state = at(0, "state");
        ck_assert_int_eq(mkdir(state, 0755), 0);
        ck_assert_int_eq(chown(state, 65534, 65534), 0);
        assert_refused(AS_ROOT, (const char *[]){"--state-dir", state, NULL},
                       (const char *[]){"state_dir: ", quoted(state), "belongs to uid 65534",
                                        "liid runs as uid 0", NULL});
}
END_TEST

START_TEST(state_dir_writable_by_others)
{
        const char *state = at(0, "state");
        ck_assert_int_eq(mkdir(state, 0755), 0);
        ck_assert_int_eq(chmod(state, 0777), 0);
        assert_refused(AS_ROOT, (const char *[]){"--state-dir", state, NULL},
                       (const char *[]){"state_dir: ", quoted(state),
                                        "writable by other users (mode 0777)", NULL});
}
END_TEST

START_TEST(socket_under_a_file)
{
        ck_assert_int_eq(close(creat(at(1, "file"), 0644)), 0);
        const char *socket = at(0, "file/liid.sock");
        assert_refused(AS_ROOT,
                       (const char *[]){"--state-dir", at(2, "state"), "--socket", socket, NULL},
                       (const char *[]){"socket: ", quoted(socket), "cannot be created: ",
                                        quoted(at(1, "file")), " is not a folder", NULL});
}
END_TEST

START_TEST(socket_on_read_only_mount)
{
        mount_tmpfs("ro", MS_RDONLY);
        const char *socket = at(0, "ro/liid.sock");
        assert_refused(AS_ROOT,
                       (const char *[]){"--state-dir", at(2, "state"), "--socket", socket, NULL},
                       (const char *[]){"socket: ", quoted(socket), "cannot be created in",
                                        quoted(at(1, "ro")), "Read-only file system", NULL});
}
END_TEST

START_TEST(socket_in_another_users_folder)
{
        const char *theirs = at(1, "theirs");
        ck_assert_int_eq(mkdir(theirs, 0755), 0);
        ck_assert_int_eq(chown(theirs, 65534, 65534), 0);
        const char *socket = at(0, "theirs/liid.sock");
        assert_refused(
            AS_ROOT, (const char *[]){"--state-dir", at(2, "state"), "--socket", socket, NULL},
            (const char *[]){"socket: its folder ", quoted(theirs), "belongs to uid 65534", NULL});
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("startup");
        const struct {
                const char *name;
                const TTest *test;
        } tests[] = {
            {"usable", usable_folders_pass},
            {"relative", relative_state_dir},
            {"noexec", state_dir_on_noexec_mount},
            {"readonly", state_dir_on_read_only_mount},
            {"file", state_dir_under_a_file},
            {"permission", state_dir_in_another_users_folder},
            {"owner", state_dir_owned_by_another_user},
            {"writable", state_dir_writable_by_others},
            {"socket-file", socket_under_a_file},
            {"socket-readonly", socket_on_read_only_mount},
            {"socket-owner", socket_in_another_users_folder},
        };
        for (size_t i = 0; i < ELEMENTSOF(tests); i++) {
                TCase *tc = tcase_create(tests[i].name);
                tcase_add_checked_fixture(tc, setup, teardown);
                tcase_set_timeout(tc, 30);
                tcase_add_test(tc, tests[i].test);
                suite_add_tcase(s, tc);
        }
        return s;
}

int main(void)
{
        return h_main(suite());
}
