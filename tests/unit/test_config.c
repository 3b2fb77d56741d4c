/* liid.conf: defaults, every value kind, and errors that name file:line. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "config.h"
#include "util.h"

static char path[512];

static void write_conf(const char *text)
{
        snprintf(path, sizeof path, "%s/test-config.%d.conf", LII_BUILD_DIR, getpid());
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fputs(text, f);
        fclose(f);
}

static char *load_error(const char *text)
{
        struct config c;
        config_init_defaults(&c);
        write_conf(text);
        char *error = NULL;
        int r = config_load_file(&c, path, false, &error);
        config_done(&c);
        unlink(path);
        ck_assert_int_lt(r, 0);
        ck_assert_ptr_nonnull(error);
        return error;
}

START_TEST(defaults)
{
        struct config c;
        config_init_defaults(&c);
        ck_assert_str_eq(c.source_url, "file:///etc/lii/desired.json");
        ck_assert_uint_eq(c.poll_interval_usec, 30 * USEC_PER_SEC);
        ck_assert_uint_eq(c.fetch_timeout_usec, 30 * USEC_PER_SEC);
        ck_assert_uint_eq(c.artifact_min_rate, 64 * 1024);
        ck_assert(c.require_signature);
        ck_assert_str_eq(c.state_dir, "/var/lib/lii");
        ck_assert_str_eq(c.socket_path, "/run/lii/liid.sock");
        ck_assert_str_eq(c.bus, "system");
        ck_assert_str_eq(c.slice, "lii.slice");
        ck_assert_uint_eq(c.max_parallel, 4);
        ck_assert_uint_eq(c.keep_revisions, 3);
        ck_assert_str_eq(c.read_group, "lii");
        ck_assert_ptr_null(c.admin_group);
        ck_assert_ptr_null(c.node_name);
        config_done(&c);
}
END_TEST

START_TEST(full_file)
{
        struct config c;
        config_init_defaults(&c);
        write_conf("; the brief's example, with comments as operators write them\n"
                   "[source]\n"
                   "url = https://example.com/desired.json   ; inline comment\n"
                   "poll_interval = 500ms\n"
                   "fetch_timeout = 2m\n"
                   "artifact_min_rate = 1M\n"
                   "require_signature = no\n"
                   "ca_file =\n"
                   "[trust]\n"
                   "desired_keys = /k/d\n"
                   "artifact_keys = /k/a\n"
                   "[node]\nname = web-1\n"
                   "[paths]\nstate_dir = /srv/lii\nsocket = /run/x.sock\n"
                   "[systemd]\nbus = unix:path=/run/user/0/systemd/private\nslice = apps.slice\n"
                   "[rollout]\nmax_parallel = 8\nkeep_revisions = 5\n"
                   "[api]\nread_group = ops\nadmin_group = wheel\n"
                   "[log]\nlevel = debug\n");
        char *error = NULL;
        ck_assert_int_eq(config_load_file(&c, path, false, &error), 0);
        unlink(path);
        ck_assert_str_eq(c.source_url, "https://example.com/desired.json");
        ck_assert_uint_eq(c.poll_interval_usec, 500 * USEC_PER_MSEC);
        ck_assert_uint_eq(c.fetch_timeout_usec, 120 * USEC_PER_SEC);
        ck_assert_uint_eq(c.artifact_min_rate, 1 << 20);
        ck_assert(!c.require_signature);
        ck_assert_ptr_null(c.ca_file);
        ck_assert_str_eq(c.node_name, "web-1");
        ck_assert_str_eq(c.bus, "unix:path=/run/user/0/systemd/private");
        ck_assert_uint_eq(c.max_parallel, 8);
        ck_assert_str_eq(c.admin_group, "wheel");
        ck_assert_int_eq(c.log_level, LOG_DEBUG);
        config_done(&c);
}
END_TEST

START_TEST(unknown_key_names_line)
{
        char *e = load_error("[source]\nurl = file:///x\npoll_intervall = 3s\n");
        ck_assert_ptr_nonnull(strstr(e, ".conf:3: unknown key 'poll_intervall' in [source]"));
        free(e);
}
END_TEST

START_TEST(unknown_section)
{
        char *e = load_error("[rollouts]\nmax_parallel = 2\n");
        ck_assert_ptr_nonnull(strstr(e, ":2: unknown section [rollouts]"));
        free(e);
}
END_TEST

START_TEST(bad_values)
{
        char *e = load_error("[source]\npoll_interval = soon\n");
        ck_assert_ptr_nonnull(strstr(e, ":2: poll_interval: 'soon' is not a duration"));
        free(e);
        e = load_error("[source]\nfetch_timeout = 0\n");
        ck_assert_ptr_nonnull(strstr(e, ":2: fetch_timeout: '0' is not a duration"));
        free(e);
        e = load_error("[source]\nartifact_min_rate = fast\n");
        ck_assert_ptr_nonnull(strstr(e, ":2: artifact_min_rate: 'fast' is not a size"));
        free(e);
        e = load_error("[source]\nartifact_min_rate = 0K\n");
        ck_assert_ptr_nonnull(strstr(e, "artifact_min_rate: '0K' is not a size"));
        free(e);
        e = load_error("[source]\nrequire_signature = maybe\n");
        ck_assert_ptr_nonnull(strstr(e, ":2: require_signature: 'maybe' is not yes or no"));
        free(e);
        e = load_error("[rollout]\nmax_parallel = 0\n");
        ck_assert_ptr_nonnull(strstr(e, "max_parallel: '0' is not a whole number from 1 to 64"));
        free(e);
        e = load_error("[source]\nurl = ftp://x/y\n");
        ck_assert_ptr_nonnull(strstr(e, "url: 'ftp://x/y' is not a file:///"));
        free(e);
        e = load_error("[paths]\nstate_dir = var/lib\n");
        ck_assert_ptr_nonnull(strstr(e, "state_dir: 'var/lib' is not an absolute path"));
        free(e);
        e = load_error("[systemd]\nbus = session\n");
        ck_assert_ptr_nonnull(strstr(e, "bus: 'session' is not system, user or a unix: address"));
        free(e);
        e = load_error("[log]\nlevel = loud\n");
        ck_assert_ptr_nonnull(strstr(e, "level: 'loud' is not one of"));
        free(e);
}
END_TEST

/* Every path liid uses must be absolute: a relative one would depend on the
 * folder liid happened to start in ("/" under systemd). Each is refused
 * with its key and value. */
START_TEST(relative_paths_refused)
{
        static const struct {
                const char *text, *message;
        } cases[] = {
            {"[paths]\nsocket = run/liid.sock\n",
             ":2: socket: 'run/liid.sock' is not an absolute path"},
            {"[trust]\ndesired_keys = keys/desired.d\n",
             ":2: desired_keys: 'keys/desired.d' is not an absolute path"},
            {"[trust]\nartifact_keys = ./artifact.d\n",
             ":2: artifact_keys: './artifact.d' is not an absolute path"},
            {"[source]\nca_file = ca.pem\n", ":2: ca_file: 'ca.pem' is not an absolute path"},
            {"[source]\nurl = file://srv/lii/desired.json\n",
             ":2: url: 'file://srv/lii/desired.json' is not an absolute file:// URL"},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char *e = load_error(cases[i].text);
                ck_assert_msg(strstr(e, cases[i].message), "%s: got %s", cases[i].message, e);
                free(e);
        }
        /* An empty ca_file still means none, and an absolute one is kept. */
        struct config c;
        config_init_defaults(&c);
        char *error = NULL;
        ck_assert_int_eq(config_set(&c, "source", "ca_file", "/etc/lii/ca.pem", &error), 0);
        ck_assert_str_eq(c.ca_file, "/etc/lii/ca.pem");
        ck_assert_int_eq(config_set(&c, "source", "ca_file", "", &error), 0);
        ck_assert_ptr_null(c.ca_file);
        config_done(&c);
}
END_TEST

START_TEST(syntax_error)
{
        char *e = load_error("[source]\nthis line has no equals sign\n");
        ck_assert_ptr_nonnull(strstr(e, ":2: syntax error"));
        free(e);
}
END_TEST

START_TEST(missing_file)
{
        struct config c;
        config_init_defaults(&c);
        char *error = NULL;
        ck_assert_int_eq(config_load_file(&c, "/nonexistent/liid.conf", true, &error), 0);
        ck_assert_int_eq(config_load_file(&c, "/nonexistent/liid.conf", false, &error), -ENOENT);
        ck_assert_str_eq(error, "/nonexistent/liid.conf: No such file or directory");
        free(error);
        config_done(&c);
}
END_TEST

START_TEST(flags_use_the_same_checks)
{
        struct config c;
        config_init_defaults(&c);
        char *error = NULL;
        ck_assert_int_eq(config_set(&c, "paths", "socket", "/run/a.sock", &error), 0);
        ck_assert_str_eq(c.socket_path, "/run/a.sock");
        ck_assert_int_lt(config_set(&c, "systemd", "bus", "nope", &error), 0);
        ck_assert_str_eq(c.bus, "system");
        free(error);
        config_done(&c);
}
END_TEST

/* The commented file that packaging installs says what the defaults are;
 * it must not drift from them. */
START_TEST(shipped_file_is_the_defaults)
{
        struct config shipped, builtin;
        config_init_defaults(&shipped);
        config_init_defaults(&builtin);
        char *error = NULL;
        ck_assert_int_eq(
            config_load_file(&shipped, LII_SOURCE_DIR "/packaging/liid.conf", false, &error), 0);
        ck_assert_str_eq(shipped.source_url, builtin.source_url);
        ck_assert_uint_eq(shipped.poll_interval_usec, builtin.poll_interval_usec);
        ck_assert_uint_eq(shipped.fetch_timeout_usec, builtin.fetch_timeout_usec);
        ck_assert_uint_eq(shipped.artifact_min_rate, builtin.artifact_min_rate);
        ck_assert_int_eq(shipped.require_signature, builtin.require_signature);
        ck_assert_ptr_null(shipped.ca_file);
        ck_assert_str_eq(shipped.desired_keys, builtin.desired_keys);
        ck_assert_str_eq(shipped.artifact_keys, builtin.artifact_keys);
        ck_assert_ptr_null(shipped.node_name);
        ck_assert_str_eq(shipped.state_dir, builtin.state_dir);
        ck_assert_str_eq(shipped.socket_path, builtin.socket_path);
        ck_assert_str_eq(shipped.bus, builtin.bus);
        ck_assert_str_eq(shipped.slice, builtin.slice);
        ck_assert_uint_eq(shipped.max_parallel, builtin.max_parallel);
        ck_assert_uint_eq(shipped.keep_revisions, builtin.keep_revisions);
        ck_assert_str_eq(shipped.read_group, builtin.read_group);
        ck_assert_ptr_null(shipped.admin_group);
        ck_assert_int_eq(shipped.log_level, builtin.log_level);
        config_done(&shipped);
        config_done(&builtin);
}
END_TEST

START_TEST(etcd_section)
{
        struct config c;
        char *error = NULL;
        config_init_defaults(&c);
        ck_assert_uint_eq(c.etcd_lease_ttl_usec, 15 * USEC_PER_SEC);
        ck_assert_int_eq(config_set(&c, "etcd", "lease_ttl", "2s", &error), 0);
        ck_assert_uint_eq(c.etcd_lease_ttl_usec, 2 * USEC_PER_SEC);
        ck_assert_int_eq(config_set(&c, "etcd", "lease_ttl", "1500ms", &error), -EINVAL);
        ck_assert_str_eq(error, "lease_ttl: '1500ms' is shorter than 2s");
        free(error);
        error = NULL;
        ck_assert_int_eq(config_set(&c, "etcd", "cert_file", "/etc/lii/etcd.pem", &error), 0);
        ck_assert_str_eq(c.etcd_cert_file, "/etc/lii/etcd.pem");
        ck_assert_int_eq(config_set(&c, "etcd", "key_file", "etcd.key", &error), -EINVAL);
        free(error);
        error = NULL;
        ck_assert_int_eq(config_set(&c, "source", "url", "etcds://a:2379,b:2379/lii/prod", &error),
                         0);
        ck_assert_str_eq(c.source_url, "etcds://a:2379,b:2379/lii/prod");
        ck_assert_int_eq(config_set(&c, "source", "url", "etcd://a:2379/", &error), -EINVAL);
        ck_assert_str_eq(error, "url: 'etcd://a:2379/': no key prefix after the hosts");
        free(error);
        config_done(&c);
}
END_TEST

/* etcd's user/password authentication is refused at start, naming the key,
 * when the password cannot be had. The folders are fine: only the
 * password is at fault. */
START_TEST(etcd_password_needed_with_a_username)
{
        struct config c;
        char *error = NULL;
        config_init_defaults(&c);
        _cleanup_free_ char *dir = xasprintf("%s/test-config-etcd.%d", LII_BUILD_DIR, getpid());
        ck_assert_int_eq(mkdir(dir, 0755), 0);
        _cleanup_free_ char *state = xasprintf("%s/state", dir);
        _cleanup_free_ char *sock = xasprintf("%s/run/liid.sock", dir);
        _cleanup_free_ char *missing = xasprintf("%s/no-such-password", dir);
        ck_assert_int_eq(config_set(&c, "paths", "state_dir", state, &error), 0);
        ck_assert_int_eq(config_set(&c, "paths", "socket", sock, &error), 0);
        ck_assert_int_eq(config_prepare_paths(&c, false, &error), 0);

        ck_assert_int_eq(config_set(&c, "etcd", "username", "lii", &error), 0);
        ck_assert_int_eq(config_prepare_paths(&c, false, &error), -EINVAL);
        ck_assert_str_eq(error, "etcd.password_file: not set, but etcd.username is 'lii'");
        free(error);
        error = NULL;

        ck_assert_int_eq(config_set(&c, "etcd", "password_file", missing, &error), 0);
        ck_assert_int_eq(config_prepare_paths(&c, false, &error), -ENOENT);
        _cleanup_free_ char *want = xasprintf(
            "etcd.password_file: '%s' cannot be read: No such file or directory", missing);
        ck_assert_str_eq(error, want);
        free(error);
        config_done(&c);
        _cleanup_free_ char *rm = xasprintf("rm -rf '%s'", dir);
        ck_assert_int_eq(system(rm), 0);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("config");
        TCase *tc = tcase_create("config");
        tcase_add_test(tc, defaults);
        tcase_add_test(tc, full_file);
        tcase_add_test(tc, unknown_key_names_line);
        tcase_add_test(tc, unknown_section);
        tcase_add_test(tc, bad_values);
        tcase_add_test(tc, relative_paths_refused);
        tcase_add_test(tc, syntax_error);
        tcase_add_test(tc, missing_file);
        tcase_add_test(tc, flags_use_the_same_checks);
        tcase_add_test(tc, shipped_file_is_the_defaults);
        tcase_add_test(tc, etcd_section);
        tcase_add_test(tc, etcd_password_needed_with_a_username);
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
