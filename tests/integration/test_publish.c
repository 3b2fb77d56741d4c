/* liictl publish against a real 3-member etcd cluster: documents signed
 * with the real minisign, read back with etcdctl, and applied by a real
 * liid whose source is that etcd. What it refuses leaves etcd as it was;
 * a publish that races another is refused and the other's document stays. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "util.h"

#define PREFIX  "lii/test"
#define DOC_KEY PREFIX "/desired/doc"
#define SIG_KEY PREFIX "/desired/sig"

static struct h_env env;
static struct h_etcd etcd;
static char url[700];
static char doc_path[700], pub_path[700];

static const struct h_service v1 = {.name = "hello", .artifact = 1};
static const struct h_service v2 = {.name = "hello", .artifact = 2};
static const struct h_service v3 = {.name = "hello", .artifact = 3};

enum mode { PLAIN, WITH_LIID, TLS, AUTH };

static void setup_with(enum mode mode)
{
        const char *name = tcase_name();
        h_setup(&env, name ? name : "publish");
        char dir[700];
        snprintf(dir, sizeof dir, "%s/etcd", env.dir);
        /* Tokens expire after a second unused. */
        etcd.auth_token_ttl = mode == AUTH ? 1 : 0;
        if (mode == TLS)
                h_etcd_start_tls(&etcd, dir);
        else
                h_etcd_start(&etcd, dir);
        if (mode == AUTH)
                h_etcd_enable_auth(&etcd, "lii", "s3cret", PREFIX);
        h_etcd_url(&etcd, 0, PREFIX, url, sizeof url);
        /* A document from etcd must name its artifacts absolutely. */
        snprintf(env.artifact_base, sizeof env.artifact_base, "file://%s", env.www);
        snprintf(doc_path, sizeof doc_path, "%s/desired.json", env.www);
        snprintf(pub_path, sizeof pub_path, "%s/keys/desired.d/desired.pub", env.dir);
        if (mode == WITH_LIID) {
                /* Polled once an hour: what liid applies came through its
                 * watch on what liictl wrote. */
                h_set_source(&env, url, "1h");
                h_start_liid(&env);
        }
}

static void setup(void)
{
        setup_with(PLAIN);
}

static void setup_liid(void)
{
        setup_with(WITH_LIID);
}

static void setup_tls(void)
{
        setup_with(TLS);
}

static void setup_auth(void)
{
        setup_with(AUTH);
}

static void teardown(void)
{
        h_teardown(&env);
        h_etcd_stop(&etcd);
}

/* Runs liictl publish --etcd URL with args (NULL-terminated) and then the
 * document; returns its exit code, its output and its errors. */
static int publish_with(const char *etcd_url, const char *const *args, const char *doc,
                        char **ret_out, char **ret_err)
{
        const char *argv[24] = {"publish", "--etcd", etcd_url};
        size_t n = 3;
        for (; args && *args && n < ELEMENTSOF(argv) - 2; args++)
                argv[n++] = *args;
        argv[n++] = doc;
        argv[n] = NULL;
        char *out = NULL, *err = NULL;
        int rc = h_liictl_err(&env, &out, &err, argv);
        if (ret_out)
                *ret_out = out;
        else
                free(out);
        if (ret_err)
                *ret_err = err;
        else
                free(err);
        return rc;
}

static int publish(const char *const *args, char **ret_out, char **ret_err)
{
        return publish_with(url, args, doc_path, ret_out, ret_err);
}

/* A key's value and revision as etcdctl reads it (as root once etcd
 * wants a user). */
struct kv {
        bool found;
        char *value;
        size_t len;
        long long mod_revision;
};

static struct kv etcd_get(const char *key)
{
        char cmd[4096];
        int port = 0;
        for (int i = 0; i < H_ETCD_MEMBERS && !port; i++)
                if (etcd.pid[i] > 0)
                        port = etcd.client_port[i];
        ck_assert_int_ne(port, 0);
        snprintf(cmd, sizeof cmd,
                 "ETCDCTL_API=3 etcdctl --endpoints=%s://127.0.0.1:%d %s%s%s%s%s%s%s%s "
                 "get '%s' -w json",
                 etcd.tls ? "https" : "http", port, etcd.tls ? "--cacert=" : "",
                 etcd.tls ? etcd.ca_file : "", etcd.tls ? " --cert=" : "",
                 etcd.tls ? etcd.cert_file : "", etcd.tls ? " --key=" : "",
                 etcd.tls ? etcd.key_file : "", etcd.root_password[0] ? " --user=root:" : "",
                 etcd.root_password, key);
        FILE *f = popen(cmd, "r");
        ck_assert_ptr_nonnull(f);
        char *text = NULL;
        size_t len = 0;
        ck_assert_int_gt(getdelim(&text, &len, '\0', f), 0);
        ck_assert_int_eq(pclose(f), 0);
        json_object *o = json_tokener_parse(text);
        ck_assert_msg(o != NULL, "etcdctl: %s", text);
        free(text);
        struct kv kv = {0};
        json_object *kvs = h_json_path(o, "kvs");
        if (kvs && json_object_array_length(kvs) > 0) {
                json_object *first = json_object_array_get_idx(kvs, 0);
                const char *v = h_json_str(first, "value");
                const char *why;
                size_t at;
                ck_assert_int_eq(
                    base64_decode(v, strlen(v), (uint8_t **)&kv.value, &kv.len, &why, &at), 0);
                kv.found = true;
                kv.mod_revision = h_json_int(first, "mod_revision");
        }
        json_object_put(o);
        return kv;
}

static char *read_text(const char *path)
{
        char *text = NULL;
        size_t len;
        int r = read_file_capped(path, 1 << 20, &text, &len);
        ck_assert_msg(r == 0, "%s", path);
        return text;
}

/* etcd holds exactly the bytes of path (and its .minisig) under the
 * document's (and the signature's) key; returns their revision. */
static long long assert_published(const char *path)
{
        char sig_path[720];
        snprintf(sig_path, sizeof sig_path, "%s.minisig", path);
        char *doc = read_text(path), *sig = read_text(sig_path);
        struct kv d = etcd_get(DOC_KEY), s = etcd_get(SIG_KEY);
        ck_assert_msg(d.found && s.found, "the keys are not in etcd");
        ck_assert_uint_eq(d.len, strlen(doc));
        ck_assert(memcmp(d.value, doc, d.len) == 0);
        ck_assert_uint_eq(s.len, strlen(sig));
        ck_assert(memcmp(s.value, sig, s.len) == 0);
        /* One transaction: one revision for both. */
        ck_assert_int_eq(d.mod_revision, s.mod_revision);
        free(doc);
        free(sig);
        free(d.value);
        free(s.value);
        return d.mod_revision;
}

static void assert_nothing_written(void)
{
        struct kv d = etcd_get(DOC_KEY), s = etcd_get(SIG_KEY);
        ck_assert_msg(!d.found && !s.found, "something was written to etcd");
}

static void assert_has(const char *text, const char *part)
{
        ck_assert_msg(text && strstr(text, part), "'%s' does not say '%s'", text ? text : "", part);
}

/* Copies the document and its signature as they are now to name (in www). */
static void keep_copy(const char *name, char *ret_path, size_t size)
{
        snprintf(ret_path, size, "%s/%s", env.www, name);
        _cleanup_free_ char *cmd = xasprintf("cp '%s' '%s' && cp '%s.minisig' '%s.minisig'",
                                             doc_path, ret_path, doc_path, ret_path);
        ck_assert_int_eq(system(cmd), 0);
}

/* The key id minisign wrote in a .pub file's comment. */
static void key_id_of(const char *pub, char id[17])
{
        /* "untrusted comment: minisign public key <ID>" on the first line. */
        char line[256] = "";
        FILE *f = fopen(pub, "re");
        ck_assert_ptr_nonnull(f);
        ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
        fclose(f);
        const char *p = strstr(line, "minisign public key ");
        ck_assert_ptr_nonnull(p);
        p += strlen("minisign public key ");
        /* Without leading zeros: an id may be shorter than 16 digits. */
        size_t len = strcspn(p, " \r\n");
        ck_assert_uint_ge(len, 1);
        ck_assert_uint_le(len, 16);
        snprintf(id, 17, "%.*s", (int)len, p);
}

START_TEST(test_published_and_applied)
{
        h_publish(&env, &v1, 1, 0);
        char *out = NULL, *err = NULL;
        const char *with_key[] = {"--key", pub_path, NULL};
        ck_assert_int_eq(publish(with_key, &out, &err), 0);
        long long rev = assert_published(doc_path);
        char want[1024];
        snprintf(want, sizeof want, "published serial 1 to %s (revision %lld)\n", url, rev);
        ck_assert_str_eq(out, want);
        ck_assert_ptr_null(strstr(err, "not checked"));
        free(out);
        free(err);
        json_object_put(h_wait_generation(&env, "hello", 1));

        /* Without --key it says that nothing checked the signature; --json
         * says what was written. */
        h_publish(&env, &v2, 1, 0);
        const char *json[] = {"--json", NULL};
        ck_assert_int_eq(publish(json, &out, &err), 0);
        assert_has(err, "was not checked: no --key given");
        rev = assert_published(doc_path);
        json_object *o = json_tokener_parse(out);
        ck_assert_ptr_nonnull(o);
        ck_assert_int_eq(h_json_int(o, "serial"), 2);
        ck_assert_int_eq(h_json_int(o, "revision"), rev);
        ck_assert_str_eq(h_json_str(o, "url"), url);
        json_object_put(o);
        free(out);
        free(err);
        json_object *st = h_wait_generation(&env, "hello", 2);
        json_object_put(st);
        ck_assert_int_eq(h_api_get(&env, "/v1/status", &st), 200);
        ck_assert_int_eq(h_json_int(st, "source.serial"), 2);
        json_object_put(st);
}
END_TEST

START_TEST(test_bad_signature_refused)
{
        char key_id[17], other_id[17], other_pub[700], *err = NULL;
        key_id_of(pub_path, key_id);
        const char *with_key[] = {"--key", pub_path, NULL};

        /* Changed after signing. */
        h_publish(&env, &v1, 1, 0);
        char cmd[2400];
        snprintf(cmd, sizeof cmd, "sed -i 's/hi from/hi From/' '%s'", doc_path);
        ck_assert_int_eq(system(cmd), 0);
        ck_assert_int_eq(publish(with_key, NULL, &err), 1);
        assert_has(err, "the signature by key");
        assert_has(err, "signature does not match the file");
        free(err);
        assert_nothing_written();

        /* Signed by a key that is not the one given: both are named. */
        snprintf(other_pub, sizeof other_pub, "%s/other.pub", env.dir);
        snprintf(cmd, sizeof cmd,
                 "cd '%s' && minisign -G -W -f -p other.pub -s other.key >/dev/null && "
                 "minisign -S -s other.key -m '%s' >/dev/null",
                 env.dir, doc_path);
        ck_assert_int_eq(system(cmd), 0);
        key_id_of(other_pub, other_id);
        ck_assert_int_eq(publish(with_key, NULL, &err), 1);
        char want[1024];
        snprintf(want, sizeof want, "signed by key %s, which is none of the --key keys: %s (%s)",
                 other_id, key_id, pub_path);
        assert_has(err, want);
        free(err);
        assert_nothing_written();

        /* Signed well, but not a document liid would take: the mistake is
         * caught here, not by the fleet. */
        h_publish_raw(&env, "{\"format\":\"lii.desired/1\",\"serial\":5,\"services\":{\"hello\":"
                            "{\"artifact\":{\"url\":\"file:///x.tar.gz\",\"sha256\":\"zz\","
                            "\"size\":1},\"exec\":[\"bin/hello\"]}}}\n");
        ck_assert_int_eq(publish(with_key, NULL, &err), 1);
        assert_has(err, "services.hello.artifact.sha256");
        free(err);
        /* A relative artifact URL, which liid refuses from etcd. */
        env.artifact_base[0] = '\0';
        h_publish(&env, &v1, 1, 0);
        ck_assert_int_eq(publish(with_key, NULL, &err), 1);
        assert_has(err, "must be absolute in a document from etcd");
        free(err);
        assert_nothing_written();
}
END_TEST

START_TEST(test_serial_not_above_refused)
{
        char *err = NULL;
        h_publish(&env, &v2, 1, 2);
        ck_assert_int_eq(publish(NULL, NULL, NULL), 0);
        long long rev = assert_published(doc_path);

        ck_assert_int_eq(publish(NULL, NULL, &err), 1);
        assert_has(err, "serial 2 is not above serial 2");
        assert_has(err, "this very document is published already");
        free(err);

        char kept[700];
        keep_copy("serial-2.json", kept, sizeof kept);
        h_publish(&env, &v1, 1, 1);
        ck_assert_int_eq(publish(NULL, NULL, &err), 1);
        char want[1024];
        snprintf(want, sizeof want,
                 "serial 1 is not above serial 2, which %s holds (revision %lld)", url, rev);
        assert_has(err, want);
        free(err);
        ck_assert_int_eq(assert_published(kept), rev);
}
END_TEST

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
        interrupted = sig;
}

/* liictl publish with the test hook that makes it wait between its read
 * and its transaction. */
struct paused {
        pid_t pid;
        int fd; /* the FIFO: a line lets liictl go on */
        char err_path[700];
        struct sigaction old_chld, old_alrm;
};

/* Starts liictl publish ARGS… DOCUMENT and returns once it has read etcd
 * and waits; fails the test when liictl ends first or takes 30 s. */
static void start_paused(struct paused *pz, const char *const *args)
{
        char fifo[700];
        snprintf(fifo, sizeof fifo, "%s/pause.fifo", env.dir);
        snprintf(pz->err_path, sizeof pz->err_path, "%s/paused.stderr", env.dir);
        unlink(fifo);
        ck_assert_int_eq(mkfifo(fifo, 0600), 0);
        /* No SA_RESTART: liictl's end, or the alarm, interrupts the wait
         * below. */
        interrupted = 0;
        struct sigaction sa = {.sa_handler = on_signal};
        sigaction(SIGCHLD, &sa, &pz->old_chld);
        sigaction(SIGALRM, &sa, &pz->old_alrm);
        const char *argv[24] = {"liictl", "publish", "--etcd", url};
        size_t n = 4;
        for (; args && *args && n < ELEMENTSOF(argv) - 2; args++)
                argv[n++] = *args;
        argv[n++] = doc_path;
        argv[n] = NULL;
        pz->pid = fork();
        ck_assert_int_ge(pz->pid, 0);
        if (pz->pid == 0) {
                setenv("LIICTL_PUBLISH_TEST_PAUSE_FIFO", fifo, 1);
                if (!freopen(pz->err_path, "w", stderr) || !freopen("/dev/null", "w", stdout))
                        _exit(127);
                execv(LII_BUILD_DIR "/liictl", (char **)argv);
                _exit(127);
        }
        /* Opening the FIFO returns once liictl opened it, after its read. */
        alarm(30);
        for (;;) {
                pz->fd = open(fifo, O_WRONLY | O_CLOEXEC);
                if (pz->fd >= 0)
                        break;
                ck_assert_int_eq(errno, EINTR);
                int status;
                if (waitpid(pz->pid, &status, WNOHANG) == pz->pid) {
                        char *err = read_text(pz->err_path);
                        ck_abort_msg("liictl ended before its transaction: %s", err);
                }
                ck_assert_msg(interrupted != SIGALRM, "liictl did not read etcd within 30 s");
        }
        alarm(0);
}

/* Lets liictl go on; returns its exit code and its errors. */
static int finish_paused(struct paused *pz, char **ret_err)
{
        ck_assert_int_eq(write(pz->fd, "go\n", 3), 3);
        close(pz->fd);
        int status;
        ck_assert_int_eq(waitpid(pz->pid, &status, 0), pz->pid);
        sigaction(SIGCHLD, &pz->old_chld, NULL);
        sigaction(SIGALRM, &pz->old_alrm, NULL);
        ck_assert(WIFEXITED(status));
        *ret_err = read_text(pz->err_path);
        return WEXITSTATUS(status);
}

/* Another publish lands between liictl's read and its transaction: the
 * transaction is refused and the other document stays. */
START_TEST(test_concurrent_publish_refused)
{
        h_publish(&env, &v1, 1, 0);
        ck_assert_int_eq(publish(NULL, NULL, NULL), 0);
        h_publish(&env, &v2, 1, 0);
        char other[700], other_sig[720];
        keep_copy("other.json", other, sizeof other);
        snprintf(other_sig, sizeof other_sig, "%s.minisig", other);
        h_publish(&env, &v3, 1, 0);

        struct paused pz;
        start_paused(&pz, NULL);
        h_etcd_put_files(&etcd, DOC_KEY, other, SIG_KEY, other_sig);
        char *err = NULL;
        int rc = finish_paused(&pz, &err);
        ck_assert_msg(rc == 1, "liictl exited %d: %s", rc, err);
        assert_has(err, "etcd changed under us (another publish?): read again and retry");
        assert_has(err, DOC_KEY " is serial 2 at revision");
        free(err);
        assert_published(other);
}
END_TEST

/* etcds:// with the members' CA and a client certificate, which the
 * cluster requires (--client-cert-auth). */
START_TEST(test_tls_with_client_certificate)
{
        h_publish(&env, &v1, 1, 0);
        char *out = NULL, *err = NULL;
        const char *no_cert[] = {"--ca-file", etcd.ca_file, NULL};
        ck_assert_int_eq(publish(no_cert, NULL, &err), 3);
        assert_has(err, "no etcd member answered");
        free(err);
        assert_nothing_written();

        const char *tls[] = {"--ca-file",  etcd.ca_file,  "--cert-file", etcd.cert_file,
                             "--key-file", etcd.key_file, NULL};
        ck_assert_int_eq(publish(tls, &out, NULL), 0);
        long long rev = assert_published(doc_path);
        char want[1024];
        snprintf(want, sizeof want, "published serial 1 to %s (revision %lld)\n", url, rev);
        ck_assert_str_eq(out, want);
        free(out);
}
END_TEST

static void write_password(const char *name, const char *password, char *ret_path, size_t size)
{
        snprintf(ret_path, size, "%s/%s", env.dir, name);
        FILE *f = fopen(ret_path, "we");
        ck_assert_ptr_nonnull(f);
        fprintf(f, "%s\n", password);
        fclose(f);
}

/* etcd's user/password authentication: a user who may write publishes,
 * with a token renewed when it expired; a reader, a wrong password or no
 * user at all are denied (exit 4). */
START_TEST(test_user_and_password)
{
        char root_pw[700], reader_pw[700], wrong_pw[700], *err = NULL;
        write_password("root.pw", etcd.root_password, root_pw, sizeof root_pw);
        write_password("reader.pw", "s3cret", reader_pw, sizeof reader_pw);
        write_password("wrong.pw", "guessed", wrong_pw, sizeof wrong_pw);
        h_publish(&env, &v1, 1, 0);

        ck_assert_int_eq(publish(NULL, NULL, &err), 4);
        assert_has(err, "--user NAME --password-file FILE");
        free(err);
        const char *wrong[] = {"--user", "root", "--password-file", wrong_pw, NULL};
        ck_assert_int_eq(publish(wrong, NULL, &err), 4);
        assert_has(err, "authentication as root failed");
        free(err);
        const char *reader[] = {"--user", "lii", "--password-file", reader_pw, NULL};
        ck_assert_int_eq(publish(reader, NULL, &err), 4);
        assert_has(err, "permission denied");
        free(err);
        assert_nothing_written();

        /* The token liictl got for its read expires (after a second
         * unused) before its transaction: it gets a new one. */
        const char *root[] = {"--user", "root", "--password-file", root_pw, NULL};
        struct paused pz;
        start_paused(&pz, root);
        /* Longer than the token's life: no event can stand for it. */
        usleep(2500 * 1000);
        int rc = finish_paused(&pz, &err);
        ck_assert_msg(rc == 0, "liictl exited %d: %s", rc, err);
        free(err);
        assert_published(doc_path);
}
END_TEST

/* Members are tried in the order given: a lost first member is passed
 * over, a cluster that is down is unreachable (exit 3) and says why. */
START_TEST(test_failover_and_unreachable)
{
        char *err = NULL;
        h_publish(&env, &v1, 1, 0);
        h_etcd_stop_member(&etcd, 0);
        ck_assert_int_eq(publish(NULL, NULL, NULL), 0);
        assert_published(doc_path);

        /* Usage errors are told before anything talks to etcd. */
        const char *tls_on_plain[] = {"--ca-file", pub_path, NULL};
        ck_assert_int_eq(publish(tls_on_plain, NULL, &err), 2);
        assert_has(err, "are for etcds://");
        free(err);
        ck_assert_int_eq(publish_with("etcd://127.0.0.1:2379", NULL, doc_path, NULL, &err), 2);
        assert_has(err, "--etcd");
        free(err);

        h_publish(&env, &v2, 1, 0);
        h_etcd_stop(&etcd);
        ck_assert_int_eq(publish(NULL, NULL, &err), 3);
        char want[64];
        snprintf(want, sizeof want, "http://127.0.0.1:%d: ", etcd.client_port[2]);
        assert_has(err, "no etcd member answered");
        assert_has(err, want);
        free(err);
}
END_TEST

static Suite *suite(void)
{
        Suite *s = suite_create("publish");
        const struct {
                const char *name;
                const TTest *test;
                void (*setup)(void);
        } cases[] = {
            {"published_and_applied", test_published_and_applied, setup_liid},
            {"bad_signature", test_bad_signature_refused, setup},
            {"serial_not_above", test_serial_not_above_refused, setup},
            {"concurrent", test_concurrent_publish_refused, setup},
            {"tls", test_tls_with_client_certificate, setup_tls},
            {"auth", test_user_and_password, setup_auth},
            {"failover", test_failover_and_unreachable, setup},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                TCase *tc = tcase_create(cases[i].name);
                tcase_add_checked_fixture(tc, cases[i].setup, teardown);
                tcase_set_timeout(tc, 120);
                tcase_add_test(tc, cases[i].test);
                suite_add_tcase(s, tc);
        }
        return s;
}

int main(void)
{
        return h_main(suite());
}
