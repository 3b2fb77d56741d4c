/* Unit tests of the desired-state parser: what a document author sees
 * (accepted specs, defaults, error messages naming the path) and what the
 * engine relies on (canonical spec_json and its hash, round-trip from the
 * state file, relative URLs). Documents are written with ' for " to keep
 * them readable; doc() swaps them back. */
#include <check.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "desired.h"

#define SHA  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define SHA2 "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
#define BASE "https://example.com/a/desired.json"

#define ART        "'artifact':{'url':'https://example.com/h.tgz','sha256':'" SHA "','size':1}"
#define MIN_SVC    ART ",'exec':['bin/h']"
#define DOC_HEAD   "{'format':'lii.desired/1','serial':1,'services':{'hello':{"
#define DOC_TAIL   "}}}"
#define SVC_DOC(s) DOC_HEAD s DOC_TAIL
#define MIN_DOC    SVC_DOC(MIN_SVC)

/* The example document of the design, with the artifact relative to BASE. */
#define FULL_DOC                                                                                   \
        "{'format':'lii.desired/1','serial':42,'expires':'2026-12-31T00:00:00Z','services':{"      \
        "'hello':{'artifact':{'url':'hello-2.tar.gz','sha256':'" SHA "','size':12345,"             \
        "'signature':'hello-2.tar.gz.minisig','type':'tar'},"                                      \
        "'exec':['bin/hello','--port','${PORT}'],'env':{'GREETING':'hi'},'port':'auto',"           \
        "'ready':'started','health':{'http':'http://127.0.0.1:${PORT}/healthz','interval':'1s',"   \
        "'timeout':'2s','passes':2,'deadline':'60s','watch':'30s'},'stop_timeout':'30s',"          \
        "'limits':{'memory':'256M','cpu':'50%','tasks':256},'sandbox':'strict'}}}"

#define FULL_SPEC_JSON                                                                             \
        "{\"artifact\":{\"sha256\":\"" SHA "\","                                                   \
        "\"signature\":\"https://example.com/a/hello-2.tar.gz.minisig\",\"size\":12345,"           \
        "\"type\":\"tar\",\"url\":\"https://example.com/a/hello-2.tar.gz\"},"                      \
        "\"env\":{\"GREETING\":\"hi\"},\"exec\":[\"bin/hello\",\"--port\",\"${PORT}\"],"           \
        "\"health\":{\"deadline\":\"60s\",\"http\":\"http://127.0.0.1:${PORT}/healthz\","          \
        "\"interval\":\"1s\",\"passes\":2,\"timeout\":\"2s\",\"watch\":\"30s\"},"                  \
        "\"limits\":{\"cpu\":\"50%\",\"memory\":268435456,\"tasks\":256},\"port\":\"auto\","       \
        "\"ready\":\"started\",\"sandbox\":\"strict\",\"stop_timeout\":\"30s\"}"

static char *doc(const char *s)
{
        char *d = xstrdup(s);
        for (char *c = d; *c; c++)
                if (*c == '\'')
                        *c = '"';
        return d;
}

static struct desired *parse_ok(const char *s, const char *base)
{
        _cleanup_free_ char *d = doc(s);
        struct desired *out = NULL;
        char *error = NULL;

        int r = desired_parse(d, strlen(d), base, &out, &error);
        ck_assert_msg(r == 0, "unexpected failure %d: %s\n  document: %s", r, error, d);
        ck_assert_ptr_null(error);
        ck_assert_ptr_nonnull(out);
        return out;
}

/* Parses raw bytes, without the quote swap, and returns the error. */
static char *parse_raw_fail(const char *d, size_t len, const char *base, int code)
{
        struct desired *out = NULL;
        char *error = NULL;

        int r = desired_parse(d, len, base, &out, &error);
        ck_assert_msg(r == code, "expected %d, got %d (%s)", code, r, error ? error : "no error");
        ck_assert_ptr_null(out);
        ck_assert_ptr_nonnull(error);
        return error;
}

static void assert_error(const char *s, const char *base, int code, const char *expected)
{
        _cleanup_free_ char *d = doc(s);
        _cleanup_free_ char *error = parse_raw_fail(d, strlen(d), base, code);
        ck_assert_msg(strcmp(error, expected) == 0, "document %s\n  expected: %s\n  got:      %s",
                      d, expected, error);
}

static void assert_raw_error(const char *d, size_t len, int code, const char *expected)
{
        _cleanup_free_ char *error = parse_raw_fail(d, len, BASE, code);
        ck_assert_str_eq(error, expected);
}

START_TEST(test_full_document)
{
        _cleanup_(desired_freep) struct desired *d = parse_ok(FULL_DOC, BASE);
        uint64_t expires;

        ck_assert_int_eq(parse_rfc3339("2026-12-31T00:00:00Z", &expires), 0);
        ck_assert_uint_eq(d->serial, 42);
        ck_assert_uint_eq(d->expires_usec, expires);
        ck_assert_uint_eq(d->n_services, 1);

        const struct service_spec *s = desired_find(d, "hello");
        ck_assert_ptr_eq(s, &d->services[0]);
        ck_assert_str_eq(s->name, "hello");
        ck_assert_str_eq(s->artifact_url, "https://example.com/a/hello-2.tar.gz");
        ck_assert_str_eq(s->signature_url, "https://example.com/a/hello-2.tar.gz.minisig");
        ck_assert_str_eq(s->artifact_sha256, SHA);
        ck_assert_uint_eq(s->artifact_size, 12345);
        ck_assert_int_eq(s->artifact_type, ARTIFACT_TAR);
        ck_assert_uint_eq(strv_length(s->exec), 3);
        ck_assert_str_eq(s->exec[0], "bin/hello");
        ck_assert_str_eq(s->exec[1], "--port");
        ck_assert_str_eq(s->exec[2], "${PORT}");
        ck_assert_uint_eq(strv_length(s->env), 1);
        ck_assert_str_eq(s->env[0], "GREETING=hi");
        ck_assert_int_eq(s->port, 0);
        ck_assert_int_eq(s->ready, READY_STARTED);
        ck_assert_int_eq(s->health.kind, HEALTH_HTTP);
        ck_assert_str_eq(s->health.target, "http://127.0.0.1:${PORT}/healthz");
        ck_assert_ptr_null(s->health.exec_argv);
        ck_assert_uint_eq(s->health.interval_usec, 1 * USEC_PER_SEC);
        ck_assert_uint_eq(s->health.timeout_usec, 2 * USEC_PER_SEC);
        ck_assert_uint_eq(s->health.passes, 2);
        ck_assert_uint_eq(s->health.deadline_usec, 60 * USEC_PER_SEC);
        ck_assert_uint_eq(s->health.watch_usec, 30 * USEC_PER_SEC);
        ck_assert_uint_eq(s->stop_timeout_usec, 30 * USEC_PER_SEC);
        ck_assert_uint_eq(s->memory_max, 256ULL << 20);
        ck_assert_uint_eq(s->cpu_percent, 50);
        ck_assert_uint_eq(s->tasks_max, 256);
        ck_assert_int_eq(s->sandbox, SANDBOX_STRICT);
        ck_assert_str_eq(s->spec_json, FULL_SPEC_JSON);
        ck_assert_uint_eq(strlen(s->spec_sha256), 64);
        ck_assert(is_hex_string(s->spec_sha256, 64));
}
END_TEST

START_TEST(test_defaults)
{
        _cleanup_(desired_freep) struct desired *d = parse_ok(MIN_DOC, NULL);
        const struct service_spec *s = desired_find(d, "hello");

        ck_assert_ptr_nonnull(s);
        ck_assert_uint_eq(d->expires_usec, 0);
        ck_assert_str_eq(s->artifact_url, "https://example.com/h.tgz");
        ck_assert_str_eq(s->signature_url, "https://example.com/h.tgz.minisig");
        ck_assert_int_eq(s->artifact_type, ARTIFACT_TAR);
        ck_assert_ptr_nonnull(s->env);
        ck_assert_uint_eq(strv_length(s->env), 0);
        ck_assert_int_eq(s->port, 0);
        ck_assert_int_eq(s->ready, READY_STARTED);
        ck_assert_int_eq(s->health.kind, HEALTH_NONE);
        ck_assert_ptr_null(s->health.target);
        ck_assert_uint_eq(s->health.interval_usec, 1 * USEC_PER_SEC);
        ck_assert_uint_eq(s->health.timeout_usec, 2 * USEC_PER_SEC);
        ck_assert_uint_eq(s->health.passes, 1);
        ck_assert_uint_eq(s->health.deadline_usec, 60 * USEC_PER_SEC);
        ck_assert_uint_eq(s->health.watch_usec, 0);
        ck_assert_uint_eq(s->stop_timeout_usec, 30 * USEC_PER_SEC);
        ck_assert_uint_eq(s->memory_max, 0);
        ck_assert_uint_eq(s->cpu_percent, 0);
        ck_assert_uint_eq(s->tasks_max, 0);
        ck_assert_int_eq(s->sandbox, SANDBOX_STRICT);
        ck_assert_str_eq(s->spec_json,
                         "{\"artifact\":{\"sha256\":\"" SHA "\",\"signature\":"
                         "\"https://example.com/h.tgz.minisig\",\"size\":1,\"type\":\"tar\","
                         "\"url\":\"https://example.com/h.tgz\"},\"env\":{},\"exec\":[\"bin/h\"],"
                         "\"limits\":{},\"port\":\"auto\",\"ready\":\"started\","
                         "\"sandbox\":\"strict\",\"stop_timeout\":\"30s\"}");
}
END_TEST

START_TEST(test_health_defaults)
{
        _cleanup_(desired_freep) struct desired *d =
            parse_ok(SVC_DOC(MIN_SVC ",'health':{'tcp':'127.0.0.1:${PORT}'}"), NULL);
        const struct service_spec *s = &d->services[0];

        ck_assert_int_eq(s->health.kind, HEALTH_TCP);
        ck_assert_str_eq(s->health.target, "127.0.0.1:${PORT}");
        ck_assert_uint_eq(s->health.interval_usec, 1 * USEC_PER_SEC);
        ck_assert_uint_eq(s->health.timeout_usec, 2 * USEC_PER_SEC);
        ck_assert_uint_eq(s->health.passes, 1);
        ck_assert_uint_eq(s->health.deadline_usec, 60 * USEC_PER_SEC);
        ck_assert_uint_eq(s->health.watch_usec, 0);
}
END_TEST

START_TEST(test_other_kinds)
{
        _cleanup_(desired_freep) struct desired *d = parse_ok(
            SVC_DOC(
                "'artifact':{'url':'https://example.com/h','sha256':'" SHA "','size':7,"
                "'type':'file','signature':'https://keys.example.com/h.sig'},"
                "'exec':['h','--dir','${LII_ARTIFACT_DIR}','${LII_SERVICE}-${LII_GENERATION}'],"
                "'env':{'b':'2','A1':'x','A':'${PORT}','_z':''},'port':8080,'ready':'notify',"
                "'health':{'exec':['/usr/bin/check','${PORT}'],'interval':'250ms','passes':100},"
                "'limits':{'memory':4096,'cpu':'250%'},'sandbox':'none','stop_timeout':'5m'"),
            NULL);
        const struct service_spec *s = &d->services[0];

        ck_assert_int_eq(s->artifact_type, ARTIFACT_FILE);
        ck_assert_str_eq(s->signature_url, "https://keys.example.com/h.sig");
        ck_assert_str_eq(s->exec[3], "${LII_SERVICE}-${LII_GENERATION}");
        /* Sorted by key: "A" before "A1" although "A=" sorts after "A1=". */
        ck_assert_uint_eq(strv_length(s->env), 4);
        ck_assert_str_eq(s->env[0], "A=${PORT}");
        ck_assert_str_eq(s->env[1], "A1=x");
        ck_assert_str_eq(s->env[2], "_z=");
        ck_assert_str_eq(s->env[3], "b=2");
        ck_assert_int_eq(s->port, 8080);
        ck_assert_int_eq(s->ready, READY_NOTIFY);
        ck_assert_int_eq(s->health.kind, HEALTH_EXEC);
        ck_assert_ptr_null(s->health.target);
        ck_assert_uint_eq(strv_length(s->health.exec_argv), 2);
        ck_assert_str_eq(s->health.exec_argv[0], "/usr/bin/check");
        ck_assert_uint_eq(s->health.interval_usec, 250 * USEC_PER_MSEC);
        ck_assert_uint_eq(s->health.passes, 100);
        ck_assert_uint_eq(s->memory_max, 4096);
        ck_assert_uint_eq(s->cpu_percent, 250);
        ck_assert_uint_eq(s->tasks_max, 0);
        ck_assert_int_eq(s->sandbox, SANDBOX_NONE);
        ck_assert_uint_eq(s->stop_timeout_usec, 300 * USEC_PER_SEC);
        ck_assert_ptr_nonnull(strstr(s->spec_json, "\"interval\":\"250ms\""));
        ck_assert_ptr_nonnull(strstr(s->spec_json, "\"stop_timeout\":\"300s\""));
        ck_assert_ptr_nonnull(strstr(s->spec_json, "\"port\":8080"));
}
END_TEST

START_TEST(test_sorted_and_find)
{
        _cleanup_(desired_freep) struct desired *d =
            parse_ok("{'format':'lii.desired/1','serial':0,'services':{'zeta':{" MIN_SVC
                     "},'alpha':{" MIN_SVC "},'m-1':{" MIN_SVC "},'0':{" MIN_SVC "}}}",
                     NULL);

        ck_assert_uint_eq(d->serial, 0);
        ck_assert_uint_eq(d->n_services, 4);
        ck_assert_str_eq(d->services[0].name, "0");
        ck_assert_str_eq(d->services[1].name, "alpha");
        ck_assert_str_eq(d->services[2].name, "m-1");
        ck_assert_str_eq(d->services[3].name, "zeta");
        ck_assert_ptr_eq(desired_find(d, "m-1"), &d->services[2]);
        ck_assert_ptr_eq(desired_find(d, "zeta"), &d->services[3]);
        ck_assert_ptr_null(desired_find(d, "beta"));
        ck_assert_ptr_null(desired_find(NULL, "zeta"));
        /* The same entry under different names is the same spec. */
        ck_assert_str_eq(d->services[0].spec_sha256, d->services[3].spec_sha256);
}
END_TEST

START_TEST(test_empty_services)
{
        _cleanup_(desired_freep) struct desired *d =
            parse_ok("{'format':'lii.desired/1','serial':7,'services':{}}", NULL);

        ck_assert_uint_eq(d->n_services, 0);
        ck_assert_ptr_null(desired_find(d, "hello"));
}
END_TEST

START_TEST(test_outputs_untouched)
{
        struct desired *sentinel = (struct desired *)&sentinel, *out = sentinel;
        char *error = (char *)"untouched";
        _cleanup_free_ char *good = doc(MIN_DOC);

        ck_assert_int_eq(desired_parse("{}", 2, NULL, &out, &error), -EINVAL);
        ck_assert_ptr_eq(out, sentinel);
        ck_assert_str_eq(error, "format: required");
        free(error);

        error = (char *)"untouched";
        ck_assert_int_eq(desired_parse(good, strlen(good), NULL, &out, &error), 0);
        ck_assert_str_eq(error, "untouched");
        ck_assert_ptr_ne(out, sentinel);
        desired_free(out);
}
END_TEST

/* Every error the parser reports, with the exact message a user sees. */
static const struct {
        const char *doc;
        int code;
        const char *error;
} errors[] = {
    /* The document. */
    {"[]", -EINVAL, "document: must be an object"},
    {"{'serial':1,'services':{}}", -EINVAL, "format: required"},
    {"{'format':'lii.desired/2','serial':1,'services':{}}", -EINVAL,
     "format: expected \"lii.desired/1\""},
    {"{'format':1,'serial':1,'services':{}}", -EINVAL, "format: expected \"lii.desired/1\""},
    {"{'format':'lii.desired/1','services':{}}", -EINVAL, "serial: required"},
    {"{'format':'lii.desired/1','serial':-1,'services':{}}", -EINVAL,
     "serial: must be an integer from 0 to 9223372036854775807"},
    {"{'format':'lii.desired/1','serial':1.5,'services':{}}", -EINVAL,
     "serial: must be an integer from 0 to 9223372036854775807"},
    {"{'format':'lii.desired/1','serial':'1','services':{}}", -EINVAL,
     "serial: must be an integer from 0 to 9223372036854775807"},
    {"{'format':'lii.desired/1','serial':99999999999999999999999,'services':{}}", -EINVAL,
     "serial: must be an integer from 0 to 9223372036854775807"},
    {"{'format':'lii.desired/1','serial':1,'expires':'tomorrow','services':{}}", -EINVAL,
     "expires: must be an RFC 3339 time like \"2026-12-31T00:00:00Z\""},
    {"{'format':'lii.desired/1','serial':1,'expires':1798675200,'services':{}}", -EINVAL,
     "expires: must be an RFC 3339 time like \"2026-12-31T00:00:00Z\""},
    {"{'format':'lii.desired/1','serial':1,'expires':'1970-01-01T00:00:00Z','services':{}}",
     -EINVAL, "expires: must be after 1970-01-01T00:00:00Z"},
    {"{'format':'lii.desired/1','serial':1}", -EINVAL, "services: required"},
    {"{'format':'lii.desired/1','serial':1,'services':[]}", -EINVAL, "services: must be an object"},
    {"{'format':'lii.desired/1','serial':1,'services':{},'foo':1}", -EINVAL, "foo: unknown key"},
    {"{'format':'lii.desired/1','serial':1,'services':{'Hello':{}}}", -EINVAL,
     "services.Hello: invalid service name (want [a-z0-9][a-z0-9-]{0,47})"},
    {"{'format':'lii.desired/1','serial':1,'services':{'-x':{}}}", -EINVAL,
     "services.-x: invalid service name (want [a-z0-9][a-z0-9-]{0,47})"},
    {"{'format':'lii.desired/1','serial':1,'services':{'a\\n':{}}}", -EINVAL,
     "services.a\\x0a: invalid service name (want [a-z0-9][a-z0-9-]{0,47})"},
    {"{'format':'lii.desired/1','serial':1,'services':{'hello':1}}", -EINVAL,
     "services.hello: must be an object"},
    {SVC_DOC(MIN_SVC ",'foo':1"), -EINVAL, "services.hello.foo: unknown key"},

    /* Listening sockets handed over across generations. */
    {SVC_DOC(MIN_SVC ",'listen':'127.0.0.1:8080'"), -EINVAL,
     "services.hello.listen: must be an array of addresses"},
    {SVC_DOC(MIN_SVC ",'listen':[]"), -EINVAL,
     "services.hello.listen: must list at least one address (or be left out)"},
    {SVC_DOC(MIN_SVC ",'listen':['localhost:8080']"), -EINVAL,
     "services.hello.listen[0]: must be \"IPv4:port\" or \"[IPv6]:port\" with a port from 1 to "
     "65535"},
    {SVC_DOC(MIN_SVC ",'listen':['127.0.0.1:8080','::1:8080']"), -EINVAL,
     "services.hello.listen[1]: must be \"IPv4:port\" or \"[IPv6]:port\" with a port from 1 to "
     "65535"},
    {SVC_DOC(MIN_SVC ",'listen':['127.0.0.1:0']"), -EINVAL,
     "services.hello.listen[0]: must be \"IPv4:port\" or \"[IPv6]:port\" with a port from 1 to "
     "65535"},
    {SVC_DOC(MIN_SVC ",'listen':['127.0.0.1:65536']"), -EINVAL,
     "services.hello.listen[0]: must be \"IPv4:port\" or \"[IPv6]:port\" with a port from 1 to "
     "65535"},
    {SVC_DOC(MIN_SVC ",'listen':[8080]"), -EINVAL, "services.hello.listen[0]: must be a string"},
    {SVC_DOC(MIN_SVC ",'listen':['[::]:80','[0:0::0]:80']"), -EINVAL,
     "services.hello.listen[1]: [::]:80 is listed twice"},
    {SVC_DOC(MIN_SVC ",'listen':['127.0.0.1:1','127.0.0.1:2','127.0.0.1:3','127.0.0.1:4',"
                     "'127.0.0.1:5','127.0.0.1:6','127.0.0.1:7','127.0.0.1:8','127.0.0.1:9',"
                     "'127.0.0.1:10','127.0.0.1:11','127.0.0.1:12','127.0.0.1:13','127.0.0.1:14',"
                     "'127.0.0.1:15','127.0.0.1:16','127.0.0.1:17']"),
     -EINVAL, "services.hello.listen: more than 16 addresses"},
    {SVC_DOC(MIN_SVC ",'port':8080,'listen':['127.0.0.1:8080']"), -EINVAL,
     "services.hello.port: must be \"auto\" with listen (each generation gets a probe port of its "
     "own)"},
    {"{'format':'lii.desired/1','serial':1,'services':{'a':{" MIN_SVC
     ",'listen':['0.0.0.0:80']},'b':{" MIN_SVC ",'listen':['[::]:80','0.0.0.0:80']}}}",
     -EINVAL, "services.b.listen[1]: 0.0.0.0:80 is listed by services.a too"},

    /* The fleet rollout block. */
    {SVC_DOC(MIN_SVC ",'rollout':1"), -EINVAL, "services.hello.rollout: must be an object"},
    {SVC_DOC(MIN_SVC ",'rollout':{'percent':10}"), -EINVAL, "services.hello.rollout.id: required"},
    {SVC_DOC(MIN_SVC ",'rollout':{'id':'a/b'}"), -EINVAL,
     "services.hello.rollout.id: must be 1 to 64 of A-Z a-z 0-9 . _ - (it names etcd keys)"},
    {SVC_DOC(MIN_SVC ",'rollout':{'id':'..'}"), -EINVAL,
     "services.hello.rollout.id: must be 1 to 64 of A-Z a-z 0-9 . _ - (it names etcd keys)"},
    {SVC_DOC(MIN_SVC ",'rollout':{'id':'v2','percent':101}"), -EINVAL,
     "services.hello.rollout.percent: must be a number from 0 to 100 with at most two decimals"},
    {SVC_DOC(MIN_SVC ",'rollout':{'id':'v2','percent':0.125}"), -EINVAL,
     "services.hello.rollout.percent: must be a number from 0 to 100 with at most two decimals"},
    {SVC_DOC(MIN_SVC ",'rollout':{'id':'v2','percent':'10%'}"), -EINVAL,
     "services.hello.rollout.percent: must be a number from 0 to 100 with at most two decimals"},
    {SVC_DOC(MIN_SVC ",'rollout':{'id':'v2','max_parallel':0}"), -EINVAL,
     "services.hello.rollout.max_parallel: must be an integer from 1 to 10000"},
    {SVC_DOC(MIN_SVC ",'rollout':{'id':'v2','max_failures':-1}"), -EINVAL,
     "services.hello.rollout.max_failures: must be an integer from 1 to 10000"},
    {SVC_DOC(MIN_SVC ",'rollout':{'id':'v2','wave':2}"), -EINVAL,
     "services.hello.rollout.wave: unknown key"},

    /* The artifact. */
    {SVC_DOC("'exec':['bin/h']"), -EINVAL, "services.hello.artifact: required"},
    {SVC_DOC("'artifact':'h.tgz','exec':['bin/h']"), -EINVAL,
     "services.hello.artifact: must be an object"},
    {SVC_DOC("'artifact':{'sha256':'" SHA "','size':1},'exec':['bin/h']"), -EINVAL,
     "services.hello.artifact.url: required"},
    {SVC_DOC("'artifact':{'url':'','sha256':'" SHA "','size':1},'exec':['bin/h']"), -EINVAL,
     "services.hello.artifact.url: must be a non-empty string"},
    {SVC_DOC("'artifact':{'url':'h.tgz','sha256':'" SHA "','size':1},'exec':['bin/h']"), -EINVAL,
     "services.hello.artifact.url: not a valid absolute URL"},
    {SVC_DOC("'artifact':{'url':'ftp://example.com/h.tgz','sha256':'" SHA "','size':1},"
             "'exec':['bin/h']"),
     -EINVAL,
     "services.hello.artifact.url: unsupported URL scheme \"ftp\" (want file, http or "
     "https)"},
    {SVC_DOC("'artifact':{'url':'https://example.com/h.tgz','size':1},'exec':['bin/h']"), -EINVAL,
     "services.hello.artifact.sha256: required"},
    {SVC_DOC("'artifact':{'url':'https://example.com/h.tgz','sha256':'abc','size':1},"
             "'exec':['bin/h']"),
     -EINVAL, "services.hello.artifact.sha256: not 64 hex digits"},
    {SVC_DOC("'artifact':{'url':'https://example.com/h.tgz','sha256':'" SHA
             "0','size':1},'exec':['bin/h']"),
     -EINVAL, "services.hello.artifact.sha256: not 64 hex digits"},
    {SVC_DOC("'artifact':{'url':'https://example.com/h.tgz','sha256':"
             "'0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef','size':1},"
             "'exec':['bin/h']"),
     -EINVAL, "services.hello.artifact.sha256: not lower-case hex"},
    {SVC_DOC("'artifact':{'url':'https://example.com/h.tgz','sha256':'" SHA "'},"
             "'exec':['bin/h']"),
     -EINVAL, "services.hello.artifact.size: required"},
    {SVC_DOC("'artifact':{'url':'https://example.com/h.tgz','sha256':'" SHA "','size':0},"
             "'exec':['bin/h']"),
     -EINVAL, "services.hello.artifact.size: must be an integer from 1 to 9223372036854775807"},
    {SVC_DOC("'artifact':{'url':'https://example.com/h.tgz','sha256':'" SHA "','size':'1'},"
             "'exec':['bin/h']"),
     -EINVAL, "services.hello.artifact.size: must be an integer from 1 to 9223372036854775807"},
    {SVC_DOC("'artifact':{'url':'https://example.com/h.tgz','sha256':'" SHA "','size':1,"
             "'signature':''},'exec':['bin/h']"),
     -EINVAL, "services.hello.artifact.signature: must be a non-empty string"},
    {SVC_DOC("'artifact':{'url':'https://example.com/h.tgz','sha256':'" SHA "','size':1,"
             "'signature':'gopher://example.com/h.sig'},'exec':['bin/h']"),
     -EINVAL,
     "services.hello.artifact.signature: unsupported URL scheme \"gopher\" (want file, "
     "http or https)"},
    {SVC_DOC("'artifact':{'url':'https://example.com/h.tgz','sha256':'" SHA "','size':1,"
             "'type':'zip'},'exec':['bin/h']"),
     -EINVAL, "services.hello.artifact.type: must be \"tar\" or \"file\""},
    {SVC_DOC("'artifact':{'url':'https://example.com/h.tgz','sha256':'" SHA "','size':1,"
             "'mirror':'x'},'exec':['bin/h']"),
     -EINVAL, "services.hello.artifact.mirror: unknown key"},

    /* exec. */
    {SVC_DOC(ART), -EINVAL, "services.hello.exec: required"},
    {SVC_DOC(ART ",'exec':[]"), -EINVAL,
     "services.hello.exec: must be a non-empty array of strings"},
    {SVC_DOC(ART ",'exec':'bin/h'"), -EINVAL,
     "services.hello.exec: must be a non-empty array of strings"},
    {SVC_DOC(ART ",'exec':['bin/h',1]"), -EINVAL, "services.hello.exec[1]: must be a string"},
    {SVC_DOC(ART ",'exec':['']"), -EINVAL, "services.hello.exec[0]: must be a non-empty string"},
    {SVC_DOC(ART ",'exec':['/bin/sh']"), -EINVAL,
     "services.hello.exec[0]: must be a path relative to the artifact root"},
    {SVC_DOC(ART ",'exec':['../h']"), -EINVAL,
     "services.hello.exec[0]: must not contain \"..\" components"},
    {SVC_DOC(ART ",'exec':['bin/../../h']"), -EINVAL,
     "services.hello.exec[0]: must not contain \"..\" components"},
    {SVC_DOC(ART ",'exec':['bin/..']"), -EINVAL,
     "services.hello.exec[0]: must not contain \"..\" components"},
    {SVC_DOC(ART ",'exec':['${LII_ARTIFACT_DIR}/bin/h']"), -EINVAL,
     "services.hello.exec[0]: must not contain variables"},
    {SVC_DOC(ART ",'exec':['bin/h','--port','${FOO}']"), -EINVAL,
     "services.hello.exec[2]: unknown variable ${FOO}"},
    {SVC_DOC(ART ",'exec':['bin/h','${port}']"), -EINVAL,
     "services.hello.exec[1]: unknown variable ${port}"},
    {SVC_DOC(ART ",'exec':['bin/h','${PORT']"), -EINVAL,
     "services.hello.exec[1]: unterminated variable reference"},

    /* env. */
    {SVC_DOC(MIN_SVC ",'env':['A=1']"), -EINVAL,
     "services.hello.env: must be an object of strings"},
    {SVC_DOC(MIN_SVC ",'env':{'1A':'x'}"), -EINVAL,
     "services.hello.env.1A: invalid variable name (want [A-Za-z_][A-Za-z0-9_]*)"},
    {SVC_DOC(MIN_SVC ",'env':{'A=B':'x'}"), -EINVAL,
     "services.hello.env.A=B: invalid variable name (want [A-Za-z_][A-Za-z0-9_]*)"},
    {SVC_DOC(MIN_SVC ",'env':{'':'x'}"), -EINVAL,
     "services.hello.env.: invalid variable name (want [A-Za-z_][A-Za-z0-9_]*)"},
    {SVC_DOC(MIN_SVC ",'env':{'A':1}"), -EINVAL, "services.hello.env.A: must be a string"},
    {SVC_DOC(MIN_SVC ",'env':{'A':'${NOPE}'}"), -EINVAL,
     "services.hello.env.A: unknown variable ${NOPE}"},

    /* port, ready, sandbox, stop_timeout. */
    {SVC_DOC(MIN_SVC ",'port':0"), -EINVAL,
     "services.hello.port: must be \"auto\" or an integer from 1 to 65535"},
    {SVC_DOC(MIN_SVC ",'port':65536"), -EINVAL,
     "services.hello.port: must be \"auto\" or an integer from 1 to 65535"},
    {SVC_DOC(MIN_SVC ",'port':'8080'"), -EINVAL,
     "services.hello.port: must be \"auto\" or an integer from 1 to 65535"},
    {SVC_DOC(MIN_SVC ",'port':null"), -EINVAL,
     "services.hello.port: must be \"auto\" or an integer from 1 to 65535"},
    {SVC_DOC(MIN_SVC ",'ready':'later'"), -EINVAL,
     "services.hello.ready: must be \"started\" or \"notify\""},
    {SVC_DOC(MIN_SVC ",'sandbox':'loose'"), -EINVAL,
     "services.hello.sandbox: must be \"strict\" or \"none\""},
    {SVC_DOC(MIN_SVC ",'sandbox':true"), -EINVAL,
     "services.hello.sandbox: must be \"strict\" or \"none\""},
    {SVC_DOC(MIN_SVC ",'stop_timeout':'0s'"), -EINVAL,
     "services.hello.stop_timeout: must be longer than 0s"},
    {SVC_DOC(MIN_SVC ",'stop_timeout':'soon'"), -EINVAL,
     "services.hello.stop_timeout: must be a duration like \"30s\" or \"250ms\""},
    {SVC_DOC(MIN_SVC ",'stop_timeout':30"), -EINVAL,
     "services.hello.stop_timeout: must be a duration like \"30s\" or \"250ms\""},
    {SVC_DOC(MIN_SVC ",'stop_timeout':'25h'"), -EINVAL,
     "services.hello.stop_timeout: must not be longer than 86400s"},
    {SVC_DOC(MIN_SVC ",'stop_timeout':'99999999999999999999s'"), -EINVAL,
     "services.hello.stop_timeout: must be a duration like \"30s\" or \"250ms\""},

    /* health. */
    {SVC_DOC(MIN_SVC ",'health':{}"), -EINVAL,
     "services.hello.health: exactly one of http, tcp, exec is required"},
    {SVC_DOC(MIN_SVC ",'health':{'http':'http://127.0.0.1:${PORT}/','tcp':'h:1'}"), -EINVAL,
     "services.hello.health: exactly one of http, tcp, exec is required"},
    {SVC_DOC(MIN_SVC ",'health':'http://127.0.0.1/'"), -EINVAL,
     "services.hello.health: must be an object"},
    {SVC_DOC(MIN_SVC ",'health':{'http':'ftp://127.0.0.1/'}"), -EINVAL,
     "services.hello.health.http: must be an http:// or https:// URL"},
    {SVC_DOC(MIN_SVC ",'health':{'http':''}"), -EINVAL,
     "services.hello.health.http: must be a non-empty string"},
    {SVC_DOC(MIN_SVC ",'health':{'http':'http://127.0.0.1:${PROT}/'}"), -EINVAL,
     "services.hello.health.http: unknown variable ${PROT}"},
    {SVC_DOC(MIN_SVC ",'health':{'tcp':'localhost'}"), -EINVAL,
     "services.hello.health.tcp: must be \"host:port\" with a port from 1 to 65535"},
    {SVC_DOC(MIN_SVC ",'health':{'tcp':':80'}"), -EINVAL,
     "services.hello.health.tcp: must be \"host:port\" with a port from 1 to 65535"},
    {SVC_DOC(MIN_SVC ",'health':{'tcp':'h:0'}"), -EINVAL,
     "services.hello.health.tcp: must be \"host:port\" with a port from 1 to 65535"},
    {SVC_DOC(MIN_SVC ",'health':{'tcp':'h:99999999999999999999'}"), -EINVAL,
     "services.hello.health.tcp: must be \"host:port\" with a port from 1 to 65535"},
    {SVC_DOC(MIN_SVC ",'health':{'tcp':'h:${GEN}'}"), -EINVAL,
     "services.hello.health.tcp: unknown variable ${GEN}"},
    {SVC_DOC(MIN_SVC ",'health':{'exec':[]}"), -EINVAL,
     "services.hello.health.exec: must be a non-empty array of strings"},
    {SVC_DOC(MIN_SVC ",'health':{'exec':['check','${X}']}"), -EINVAL,
     "services.hello.health.exec[1]: unknown variable ${X}"},
    {SVC_DOC(MIN_SVC ",'health':{'tcp':'h:1','interval':'0s'}"), -EINVAL,
     "services.hello.health.interval: must be longer than 0s"},
    {SVC_DOC(MIN_SVC ",'health':{'tcp':'h:1','timeout':'0ms'}"), -EINVAL,
     "services.hello.health.timeout: must be longer than 0s"},
    {SVC_DOC(MIN_SVC ",'health':{'tcp':'h:1','deadline':'1d'}"), -EINVAL,
     "services.hello.health.deadline: must be a duration like \"30s\" or \"250ms\""},
    {SVC_DOC(MIN_SVC ",'health':{'tcp':'h:1','watch':'-1s'}"), -EINVAL,
     "services.hello.health.watch: must be a duration like \"30s\" or \"250ms\""},
    {SVC_DOC(MIN_SVC ",'health':{'tcp':'h:1','passes':0}"), -EINVAL,
     "services.hello.health.passes: must be an integer from 1 to 100"},
    {SVC_DOC(MIN_SVC ",'health':{'tcp':'h:1','passes':101}"), -EINVAL,
     "services.hello.health.passes: must be an integer from 1 to 100"},
    {SVC_DOC(MIN_SVC ",'health':{'tcp':'h:1','path':'/'}"), -EINVAL,
     "services.hello.health.path: unknown key"},

    /* limits. */
    {SVC_DOC(MIN_SVC ",'limits':[]"), -EINVAL, "services.hello.limits: must be an object"},
    {SVC_DOC(MIN_SVC ",'limits':{'memory':'256Q'}"), -EINVAL,
     "services.hello.limits.memory: must be a size like \"256M\" or a number of bytes"},
    {SVC_DOC(MIN_SVC ",'limits':{'memory':true}"), -EINVAL,
     "services.hello.limits.memory: must be a size like \"256M\" or a number of bytes"},
    {SVC_DOC(MIN_SVC ",'limits':{'memory':0}"), -EINVAL,
     "services.hello.limits.memory: must be a size like \"256M\" or a number of bytes, "
     "larger than 0"},
    {SVC_DOC(MIN_SVC ",'limits':{'memory':'0M'}"), -EINVAL,
     "services.hello.limits.memory: must be a size like \"256M\" or a number of bytes, "
     "larger than 0"},
    {SVC_DOC(MIN_SVC ",'limits':{'cpu':'50'}"), -EINVAL,
     "services.hello.limits.cpu: must be a percentage like \"50%\" from 1% to 10000%"},
    {SVC_DOC(MIN_SVC ",'limits':{'cpu':50}"), -EINVAL,
     "services.hello.limits.cpu: must be a percentage like \"50%\" from 1% to 10000%"},
    {SVC_DOC(MIN_SVC ",'limits':{'cpu':'0%'}"), -EINVAL,
     "services.hello.limits.cpu: must be a percentage like \"50%\" from 1% to 10000%"},
    {SVC_DOC(MIN_SVC ",'limits':{'cpu':'10001%'}"), -EINVAL,
     "services.hello.limits.cpu: must be a percentage like \"50%\" from 1% to 10000%"},
    {SVC_DOC(MIN_SVC ",'limits':{'cpu':'%'}"), -EINVAL,
     "services.hello.limits.cpu: must be a percentage like \"50%\" from 1% to 10000%"},
    {SVC_DOC(MIN_SVC ",'limits':{'tasks':0}"), -EINVAL,
     "services.hello.limits.tasks: must be an integer from 1 to 4194304"},
    {SVC_DOC(MIN_SVC ",'limits':{'tasks':4194305}"), -EINVAL,
     "services.hello.limits.tasks: must be an integer from 1 to 4194304"},
    {SVC_DOC(MIN_SVC ",'limits':{'io':1}"), -EINVAL, "services.hello.limits.io: unknown key"},

    /* Not strict JSON. */
    {"", -EBADMSG, "document: unexpected end of input"},
    {"{", -EBADMSG, "document: unexpected end of input"},
    {"{} x", -EBADMSG, "document: invalid JSON at byte 3: unexpected character"},
    {"{}{}", -EBADMSG, "document: invalid JSON at byte 2: unexpected character"},
    {"{'a':1,}", -EBADMSG, "document: invalid JSON at byte 7: unexpected character"},
    {"{'format':'lii.desired/1','format':'lii.desired/1','serial':1,'services':{}}", -EBADMSG,
     "format: duplicate key"},
    {"{'format':'lii.desired/1','serial':1,'services':{'hello':{" MIN_SVC "},'hello':{" MIN_SVC
     "}}}",
     -EBADMSG, "services.hello: duplicate key"},
    {"{'format':'lii.desired/1','serial':1,'services':{'hello':{" MIN_SVC
     "},'hell\\u006f':{" MIN_SVC "}}}",
     -EBADMSG, "services.hello: duplicate key"},
    {SVC_DOC(MIN_SVC ",'port':1,'port':2"), -EBADMSG, "services.hello.port: duplicate key"},
    {SVC_DOC(MIN_SVC ",'health':{'exec':[{'a':1,'a':1}]}"), -EBADMSG,
     "services.hello.health.exec[0].a: duplicate key"},
    {"{'format':'lii.desired/1','serial':1,'services':{'a':{'b':{'c':{'d':{'e':{'f':{'g':{}}}"
     "}}}}}}",
     -EBADMSG, "document: nested deeper than 8 levels"},
};

START_TEST(test_errors)
{
        assert_error(errors[_i].doc, NULL, errors[_i].code, errors[_i].error);
}
END_TEST

/* A document with one "hello" service whose body is built at run time. */
static char *svc_doc_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *svc_doc_printf(const char *fmt, ...)
{
        _cleanup_free_ char *body = NULL;
        va_list ap;

        va_start(ap, fmt);
        ck_assert_int_ge(vasprintf(&body, fmt, ap), 0);
        va_end(ap);
        return xasprintf(DOC_HEAD "%s" DOC_TAIL, body);
}

static char *repeat(const char *s, size_t n, const char *sep)
{
        char *out = xstrdup("");
        for (size_t i = 0; i < n; i++) {
                char *next = xasprintf("%s%s%s", out, i ? sep : "", s);
                free(out);
                out = next;
        }
        return out;
}

START_TEST(test_limits)
{
        _cleanup_free_ char *args256 = repeat("'x'", 255, ",");
        _cleanup_free_ char *ok = svc_doc_printf(ART ",'exec':['bin/h',%s]", args256);
        desired_free(parse_ok(ok, NULL));

        _cleanup_free_ char *args257 = repeat("'x'", 256, ",");
        _cleanup_free_ char *many = svc_doc_printf(ART ",'exec':['bin/h',%s]", args257);
        assert_error(many, NULL, -EINVAL, "services.hello.exec: more than 256 arguments");

        _cleanup_free_ char *hargs = svc_doc_printf(MIN_SVC ",'health':{'exec':['c',%s]}", args257);
        assert_error(hargs, NULL, -EINVAL, "services.hello.health.exec: more than 256 arguments");

        _cleanup_free_ char *env = xstrdup("");
        for (int i = 0; i < 257; i++) {
                char *next = xasprintf("%s%s'V%d':'x'", env, i ? "," : "", i);
                free(env);
                env = next;
        }
        _cleanup_free_ char *envdoc = svc_doc_printf(MIN_SVC ",'env':{%s}", env);
        assert_error(envdoc, NULL, -EINVAL, "services.hello.env: more than 256 entries");

        _cleanup_free_ char *long4096 = repeat("a", 4096, "");
        _cleanup_free_ char *arg_ok = svc_doc_printf(ART ",'exec':['bin/h','%s']", long4096);
        desired_free(parse_ok(arg_ok, NULL));
        _cleanup_free_ char *long4097 = repeat("a", 4097, "");
        _cleanup_free_ char *arg_long = svc_doc_printf(ART ",'exec':['bin/h','%s']", long4097);
        assert_error(arg_long, NULL, -EINVAL, "services.hello.exec[1]: longer than 4096 bytes");

        _cleanup_free_ char *key_long = svc_doc_printf(MIN_SVC ",'env':{'%s':'x'}", long4097);
        assert_error(key_long, NULL, -EBADMSG,
                     "services.hello.env: object key longer than 4096 bytes");

        /* An unknown key far too long to quote whole is cut short. */
        _cleanup_free_ char *unknown = svc_doc_printf(MIN_SVC ",'%s':1", long4096);
        _cleanup_free_ char *want = xasprintf("services.hello.%.64s...: unknown key", long4096);
        assert_error(unknown, NULL, -EINVAL, want);

        _cleanup_free_ char *name49 = repeat("a", 49, "");
        _cleanup_free_ char *names = xasprintf(
            "{'format':'lii.desired/1','serial':1,'services':{'%s':{" MIN_SVC "}}}", name49);
        _cleanup_free_ char *want_name =
            xasprintf("services.%s: invalid service name (want [a-z0-9][a-z0-9-]{0,47})", name49);
        assert_error(names, NULL, -EINVAL, want_name);
}
END_TEST

START_TEST(test_too_many_services)
{
        char *services = xstrdup("");
        for (int i = 0; i <= DESIRED_MAX_SERVICES; i++) {
                char *next = xasprintf("%s%s's%d':{}", services, i ? "," : "", i);
                free(services);
                services = next;
        }
        _cleanup_free_ char *d =
            xasprintf("{'format':'lii.desired/1','serial':1,'services':{%s}}", services);
        free(services);
        assert_error(d, NULL, -EINVAL, "services: more than 4096 services");
}
END_TEST

START_TEST(test_oversize)
{
        _cleanup_free_ char *d = doc(MIN_DOC);
        size_t n = strlen(d);

        /* Exactly the limit still parses: whitespace counts like anything else. */
        _cleanup_free_ char *big = xcalloc(DESIRED_MAX_BYTES + 2, 1);
        memcpy(big, d, n);
        memset(big + n, ' ', DESIRED_MAX_BYTES - n);
        struct desired *out = NULL;
        char *error = NULL;
        ck_assert_int_eq(desired_parse(big, DESIRED_MAX_BYTES, NULL, &out, &error), 0);
        desired_free(out);

        big[DESIRED_MAX_BYTES] = ' ';
        assert_raw_error(big, DESIRED_MAX_BYTES + 1, -EFBIG, "document: larger than 1048576 bytes");
}
END_TEST

START_TEST(test_not_strict_json)
{
        _cleanup_free_ char *d = doc(MIN_DOC);
        size_t n = strlen(d);
        _cleanup_free_ char *nul = xcalloc(n + 2, 1);

        /* The bytes verified are the bytes parsed: a NUL must not end the
         * document early for one reader and not for another. */
        memcpy(nul, d, n);
        assert_raw_error(nul, n + 1, -EBADMSG, "document: contains a NUL byte");
        nul[10] = '\0';
        assert_raw_error(nul, n, -EBADMSG, "document: contains a NUL byte");

        /* json-c refuses single-quoted values in strict mode, but not keys. */
        const char *single = "{'format':\"lii.desired/1\",\"serial\":1,\"services\":{}}";
        assert_raw_error(single, strlen(single), -EBADMSG,
                         "document: invalid JSON at byte 1: single-quoted string");

        const char *tab =
            "{\"format\":\"lii.desired/1\",\"serial\":1,\"services\":{},\"x\":\"a\tb\"}";
        assert_raw_error(tab, strlen(tab), -EBADMSG,
                         "document: invalid JSON at byte 57: control character in string");

        const char *nan = "{\"format\":\"lii.desired/1\",\"serial\":NaN,\"services\":{}}";
        assert_raw_error(nan, strlen(nan), -EBADMSG,
                         "document: invalid JSON at byte 35: unexpected character");
        const char *inf = "{\"format\":\"lii.desired/1\",\"serial\":-Infinity,\"services\":{}}";
        assert_raw_error(inf, strlen(inf), -EBADMSG,
                         "document: invalid JSON at byte 36: unexpected character");
}
END_TEST

/* Every string, key or value, at any depth, must be strict UTF-8 without
 * NUL: D-Bus refuses anything else when the instance starts, long after
 * the document was taken and its serial recorded. The error names the
 * string's path, and the key as written when the key is at fault. */
static const struct {
        const char *doc;
        const char *error;
} bad_strings[] = {
    {SVC_DOC(MIN_SVC ",'env':{'GREETING':'hi\xc0\xaf'}"),
     "services.hello.env.GREETING: not valid UTF-8 (overlong encoding at byte 2)"},
    {SVC_DOC(MIN_SVC ",'env':{'GREETING':'\xed\xa0\x80'}"),
     "services.hello.env.GREETING: not valid UTF-8 (encoded surrogate at byte 0)"},
    {SVC_DOC(MIN_SVC ",'env':{'GREETING':'x\\ud800'}"),
     "services.hello.env.GREETING: not valid UTF-8 (unpaired surrogate \\ud800 at byte 1)"},
    {SVC_DOC(ART ",'exec':['bin/h','a\xf4\x90\x80\x80']"),
     "services.hello.exec[1]: not valid UTF-8 (code point above U+10FFFF at byte 1)"},
    {SVC_DOC(ART ",'exec':['bin/h','a\\u0000b']"),
     "services.hello.exec[1]: contains a NUL character (\\u0000 at byte 1)"},
    {SVC_DOC(MIN_SVC ",'health':{'http':'http://x/\xe2\x82'}"),
     "services.hello.health.http: not valid UTF-8 (truncated sequence at byte 9)"},
    {SVC_DOC(MIN_SVC ",'health':{'exec':[{'a':'\xc3(b'}]}"),
     "services.hello.health.exec[0].a: not valid UTF-8 (bad continuation byte at byte 0)"},
    {"{'format':'lii.desired/1\xff','serial':1,'services':{}}",
     "format: not valid UTF-8 (invalid lead byte at byte 13)"},
    {"{'for\x80mat':'lii.desired/1','serial':1,'services':{}}",
     "for\\x80mat: object key not valid UTF-8 (stray continuation byte at byte 3)"},
    {"{'format':'lii.desired/1','serial':1,'services':{'hell\xed\xbf\xbf':{}}}",
     "services.hell\\xed\\xbf\\xbf: object key not valid UTF-8 (encoded surrogate at byte 4)"},
    {SVC_DOC(MIN_SVC ",'env':{'A\xc0\x80':'x'}"),
     "services.hello.env.A\\xc0\\x80: object key not valid UTF-8 (overlong encoding at byte 1)"},
    {SVC_DOC(MIN_SVC ",'env':{'\\udc00A':'x'}"),
     "services.hello.env.\\x5cudc00A: object key not valid UTF-8 (unpaired surrogate \\udc00 "
     "at byte 0)"},
    {SVC_DOC(MIN_SVC ",'env':{'A\\u0000B':'x'}"),
     "services.hello.env.A\\x5cu0000B: object key contains a NUL character (\\u0000 at byte 1)"},
};

START_TEST(test_bad_strings)
{
        assert_error(bad_strings[_i].doc, NULL, -EBADMSG, bad_strings[_i].error);
}
END_TEST

START_TEST(test_good_strings)
{
        /* U+007F, U+0080, U+07FF, U+0800, U+FFFF, U+10000, U+10FFFF and
         * U+FEFF written as they are, then an escaped surrogate pair, which
         * stands for U+1F600 and is kept as its UTF-8. */
        _cleanup_(desired_freep) struct desired *d = parse_ok(
            SVC_DOC(MIN_SVC ",'env':{'GREETING':'\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf"
                            "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\xef\xbb\xbf\\ud83d\\ude00'}"),
            NULL);
        ck_assert_str_eq(d->services[0].env[0],
                         "GREETING=\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80"
                         "\xf4\x8f\xbf\xbf\xef\xbb\xbf\xf0\x9f\x98\x80");

        /* An escaped backslash is not the start of an escape. */
        _cleanup_(desired_freep) struct desired *e =
            parse_ok(SVC_DOC(MIN_SVC ",'env':{'GREETING':'\\\\ud800\\\\u0000'}"), NULL);
        ck_assert_str_eq(e->services[0].env[0], "GREETING=\\ud800\\u0000");
}
END_TEST

START_TEST(test_deep_nesting)
{
        /* Far deeper than json-c's own default, to show the limit holds before
         * anything recurses. */
        size_t n = 100000;
        _cleanup_free_ char *deep = xcalloc(2 * n + 1, 1);
        memset(deep, '[', n);
        memset(deep + n, ']', n);
        assert_raw_error(deep, 2 * n, -EBADMSG, "document: nested deeper than 8 levels");

        /* Eight levels are fine as far as JSON goes; the schema then objects. */
        const char *eight = "{\"format\":\"lii.desired/1\",\"serial\":1,\"services\":{\"hello\":"
                            "{\"health\":{\"exec\":[[[[1]]]]}}}}";
        _cleanup_free_ char *e = parse_raw_fail(eight, strlen(eight), NULL, -EINVAL);
        ck_assert_str_eq(e, "services.hello.artifact: required");
}
END_TEST

/* Documents that say the same thing in other words. */
static const char *const same_as_full[] = {
    /* Keys reordered, whitespace added, the artifact URL written absolute. */
    "{\n  'services': {\n    'hello': {\n      'sandbox': 'strict',\n"
    "      'limits': { 'tasks': 256, 'cpu': '50%', 'memory': 268435456 },\n"
    "      'stop_timeout': '30000ms',\n"
    "      'health': { 'watch': '30s', 'deadline': '1m', 'passes': 2, 'timeout': '2000ms',\n"
    "                  'interval': '1', 'http': 'http://127.0.0.1:${PORT}/healthz' },\n"
    "      'ready': 'started', 'port': 'auto', 'env': { 'GREETING': 'hi' },\n"
    "      'exec': [ 'bin/hello', '--port', '${PORT}' ],\n"
    "      'artifact': { 'type': 'tar', 'size': 12345, 'sha256': '" SHA "',\n"
    "                    'url': 'https://example.com/a/hello-2.tar.gz' }\n"
    "    }\n  },\n  'serial': 43,\n  'format': 'lii.desired/1'\n}\n",
    /* Defaults left out; the URL relative in another way. */
    "{'format':'lii.desired/1','serial':42,'services':{'hello':{"
    "'artifact':{'url':'../a/./hello-2.tar.gz','sha256':'" SHA "','size':12345},"
    "'exec':['bin/hello','--port','${PORT}'],'env':{'GREETING':'hi'},"
    "'health':{'http':'http://127.0.0.1:${PORT}/healthz','passes':2,'watch':'30s'},"
    "'limits':{'memory':'256M','cpu':'50%','tasks':256}}}}",
};

START_TEST(test_canonical_same)
{
        _cleanup_(desired_freep) struct desired *a = parse_ok(FULL_DOC, BASE);
        _cleanup_(desired_freep) struct desired *b = parse_ok(same_as_full[_i], BASE);

        ck_assert_str_eq(b->services[0].spec_json, a->services[0].spec_json);
        ck_assert_str_eq(b->services[0].spec_sha256, a->services[0].spec_sha256);
}
END_TEST

/* The rollout block says how the fleet takes a spec, not what it is:
 * with or without it, or with another percentage, the spec is the same. */
START_TEST(test_rollout_is_not_in_the_spec)
{
        _cleanup_(desired_freep) struct desired *a = parse_ok(MIN_DOC, NULL);
        _cleanup_(desired_freep) struct desired *b =
            parse_ok(SVC_DOC(MIN_SVC ",'rollout':{'id':'hello-v2','percent':12.5,'max_parallel':2,"
                                     "'max_failures':1}"),
                     NULL);
        _cleanup_(desired_freep) struct desired *c =
            parse_ok(SVC_DOC(MIN_SVC ",'rollout':{'id':'hello-v2'}"), NULL);

        ck_assert_str_eq(b->services[0].spec_json, a->services[0].spec_json);
        ck_assert_str_eq(b->services[0].spec_sha256, a->services[0].spec_sha256);
        ck_assert_str_eq(c->services[0].spec_sha256, a->services[0].spec_sha256);
        ck_assert(!a->services[0].rollout.set);
        const struct rollout_policy *p = &b->services[0].rollout;
        ck_assert(p->set);
        ck_assert_str_eq(p->id, "hello-v2");
        ck_assert_uint_eq(p->percent_hundredths, 1250);
        ck_assert_uint_eq(p->max_parallel, 2);
        ck_assert_uint_eq(p->max_failures, 1);
        /* Without a percentage, the whole fleet; no limits. */
        p = &c->services[0].rollout;
        ck_assert_uint_eq(p->percent_hundredths, 10000);
        ck_assert_uint_eq(p->max_parallel, 0);
        ck_assert_uint_eq(p->max_failures, 0);
}
END_TEST

/* Addresses in their normal form, in the listed order, in the spec (and so
 * its hash); a spec without listen reads as it always did. */
START_TEST(test_listen)
{
        _cleanup_(desired_freep) struct desired *a = parse_ok(
            SVC_DOC(MIN_SVC ",'listen':['0.0.0.0:8080','[0:0::0]:8080','[::ffff:127.0.0.1]:81']"),
            NULL);
        char **l = a->services[0].listen;
        ck_assert_ptr_nonnull(l);
        ck_assert_str_eq(l[0], "0.0.0.0:8080");
        ck_assert_str_eq(l[1], "[::]:8080");
        ck_assert_str_eq(l[2], "[::ffff:127.0.0.1]:81");
        ck_assert_ptr_null(l[3]);
        ck_assert_ptr_nonnull(strstr(a->services[0].spec_json,
                                     "\"listen\":[\"0.0.0.0:8080\",\"[::]:8080\","
                                     "\"[::ffff:127.0.0.1]:81\"]"));
        _cleanup_(desired_freep) struct desired *b = parse_ok(MIN_DOC, NULL);
        ck_assert_ptr_null(b->services[0].listen);
        ck_assert_ptr_null(strstr(b->services[0].spec_json, "listen"));
        ck_assert_str_ne(a->services[0].spec_sha256, b->services[0].spec_sha256);

        /* What a stored spec reads back to. */
        _cleanup_(service_spec_freep) struct service_spec *s = NULL;
        char *error = NULL;
        ck_assert_int_eq(service_spec_parse("hello", a->services[0].spec_json, &s, &error), 0);
        ck_assert_str_eq(s->spec_sha256, a->services[0].spec_sha256);
        ck_assert_str_eq(s->listen[1], "[::]:8080");
}
END_TEST

START_TEST(test_canonical_defaults_spelled)
{
        _cleanup_(desired_freep) struct desired *a = parse_ok(MIN_DOC, NULL);
        _cleanup_(desired_freep) struct desired *b = parse_ok(
            SVC_DOC("'artifact':{'url':'https://example.com/h.tgz','sha256':'" SHA "','size':1,"
                    "'signature':'https://example.com/h.tgz.minisig','type':'tar'},"
                    "'exec':['bin/h'],'env':{},'port':'auto','ready':'started',"
                    "'stop_timeout':'30s','limits':{},'sandbox':'strict'"),
            NULL);

        ck_assert_str_eq(b->services[0].spec_sha256, a->services[0].spec_sha256);
}
END_TEST

/* Each changes one thing in FULL_DOC, so each must change the hash. */
static const struct {
        const char *from, *to;
} changes[] = {
    {"'url':'hello-2.tar.gz'", "'url':'hello-3.tar.gz'"},
    {"'sha256':'" SHA "'", "'sha256':'" SHA2 "'"},
    {"'size':12345", "'size':12346"},
    {"'signature':'hello-2.tar.gz.minisig'", "'signature':'other.minisig'"},
    {"'type':'tar'", "'type':'file'"},
    {"'--port'", "'--listen'"},
    {"'${PORT}']", "'${PORT}','-v']"},
    {"'GREETING':'hi'", "'GREETING':'hello'"},
    {"'GREETING':'hi'", "'GREETING':'hi','B':''"},
    {"'port':'auto'", "'port':8080"},
    {"'ready':'started'", "'ready':'notify'"},
    {"'http':'http://127.0.0.1:${PORT}/healthz'", "'http':'http://127.0.0.1:${PORT}/'"},
    {"'http':'http://127.0.0.1:${PORT}/healthz'", "'tcp':'127.0.0.1:${PORT}'"},
    {"'interval':'1s'", "'interval':'2s'"},
    {"'timeout':'2s'", "'timeout':'1s'"},
    {"'passes':2", "'passes':1"},
    {"'deadline':'60s'", "'deadline':'61s'"},
    {"'watch':'30s'", "'watch':'0s'"},
    {"'stop_timeout':'30s'", "'stop_timeout':'31s'"},
    {"'memory':'256M'", "'memory':'512M'"},
    {"'cpu':'50%'", "'cpu':'51%'"},
    {"'tasks':256", "'tasks':257"},
    {"'sandbox':'strict'", "'sandbox':'none'"},
};

static char *replace(const char *s, const char *from, const char *to)
{
        const char *at = strstr(s, from);
        ck_assert_msg(at, "%s not in the document", from);
        return xasprintf("%.*s%s%s", (int)(at - s), s, to, at + strlen(from));
}

START_TEST(test_canonical_changed)
{
        _cleanup_(desired_freep) struct desired *a = parse_ok(FULL_DOC, BASE);
        _cleanup_free_ char *changed = replace(FULL_DOC, changes[_i].from, changes[_i].to);
        _cleanup_(desired_freep) struct desired *b = parse_ok(changed, BASE);

        ck_assert_str_ne(b->services[0].spec_sha256, a->services[0].spec_sha256);
}
END_TEST

START_TEST(test_canonical_health_removed)
{
        _cleanup_(desired_freep) struct desired *a = parse_ok(MIN_DOC, NULL);
        _cleanup_(desired_freep) struct desired *b =
            parse_ok(SVC_DOC(MIN_SVC ",'health':{'tcp':'h:1'}"), NULL);

        ck_assert_str_ne(b->services[0].spec_sha256, a->services[0].spec_sha256);
}
END_TEST

static const char *const round_trip_docs[] = {
    FULL_DOC,
    MIN_DOC,
    SVC_DOC("'artifact':{'url':'h t.gz','sha256':'" SHA "','size':7,'type':'file'},"
            "'exec':['h','--dir','${LII_ARTIFACT_DIR}'],'env':{'b':'\\u00e9\\n\\\"/','A1':'x'},"
            "'port':65535,'ready':'notify','health':{'exec':['/usr/bin/check','${PORT}'],"
            "'interval':'1500ms','passes':100},'limits':{'memory':4097,'cpu':'10000%'},"
            "'sandbox':'none','stop_timeout':'5m'"),
    SVC_DOC(MIN_SVC ",'health':{'tcp':'[::1]:${PORT}','watch':'24h'}"),
};

START_TEST(test_round_trip)
{
        _cleanup_(desired_freep) struct desired *d = parse_ok(round_trip_docs[_i], BASE);
        const struct service_spec *a = &d->services[0];
        _cleanup_(service_spec_freep) struct service_spec *b = NULL;
        char *error = NULL;

        int r = service_spec_parse(a->name, a->spec_json, &b, &error);
        ck_assert_msg(r == 0, "%s", error);
        ck_assert_str_eq(b->name, a->name);
        ck_assert_str_eq(b->spec_json, a->spec_json);
        ck_assert_str_eq(b->spec_sha256, a->spec_sha256);
        ck_assert_str_eq(b->artifact_url, a->artifact_url);
        ck_assert_str_eq(b->signature_url, a->signature_url);
        ck_assert_uint_eq(strv_length(b->env), strv_length(a->env));
        for (size_t i = 0; a->env[i]; i++)
                ck_assert_str_eq(b->env[i], a->env[i]);
        ck_assert_int_eq(b->health.kind, a->health.kind);
        ck_assert_uint_eq(b->health.interval_usec, a->health.interval_usec);
        ck_assert_uint_eq(b->memory_max, a->memory_max);
}
END_TEST

START_TEST(test_spec_parse_errors)
{
        struct service_spec *s = NULL;
        char *error = NULL;

        ck_assert_int_eq(service_spec_parse("Hello", "{}", &s, &error), -EINVAL);
        ck_assert_str_eq(error,
                         "services.Hello: invalid service name (want [a-z0-9][a-z0-9-]{0,47})");
        free(error);
        error = NULL;

        _cleanup_(desired_freep) struct desired *d = parse_ok(MIN_DOC, NULL);
        _cleanup_free_ char *extra =
            replace(d->services[0].spec_json, "\"exec\"", "\"foo\":1,\"exec\"");
        ck_assert_int_eq(service_spec_parse("hello", extra, &s, &error), -EINVAL);
        ck_assert_str_eq(error, "services.hello.foo: unknown key");
        free(error);
        error = NULL;

        const char *health = "\"health\":{\"tcp\":\"h:1\"},\"limits\"";
        _cleanup_free_ char *once = replace(d->services[0].spec_json, "\"limits\"", health);
        ck_assert_int_eq(service_spec_parse("hello", once, &s, &error), 0);
        s = service_spec_free(s);
        _cleanup_free_ char *twice = replace(once, "\"limits\"", health);
        ck_assert_int_eq(service_spec_parse("hello", twice, &s, &error), -EBADMSG);
        ck_assert_str_eq(error, "services.hello.health: duplicate key");
        free(error);
        error = NULL;

        /* The state file holds absolute URLs; a relative one means corruption. */
        _cleanup_free_ char *rel =
            replace(d->services[0].spec_json, "\"https://example.com/h.tgz\"", "\"h.tgz\"");
        ck_assert_int_eq(service_spec_parse("hello", rel, &s, &error), -EINVAL);
        ck_assert_str_eq(error, "services.hello.artifact.url: not a valid absolute URL");
        free(error);
        error = NULL;

        ck_assert_int_eq(service_spec_parse("hello", "{\"artifact\":", &s, &error), -EBADMSG);
        ck_assert_str_eq(error, "services.hello: unexpected end of input");
        free(error);
        ck_assert_ptr_null(s);
}
END_TEST

static const struct {
        const char *base, *url, *signature, *want_url, *want_signature;
} urls[] = {
    {"file:///srv/lii/desired.json", "hello-2.tar.gz", NULL, "file:///srv/lii/hello-2.tar.gz",
     "file:///srv/lii/hello-2.tar.gz.minisig"},
    {"file:///srv/lii/desired.json", "../art/./h.tgz", "sigs/h.minisig", "file:///srv/art/h.tgz",
     "file:///srv/lii/sigs/h.minisig"},
    {"file:///srv/lii/desired.json", "/opt/h.tgz", NULL, "file:///opt/h.tgz",
     "file:///opt/h.tgz.minisig"},
    {"https://example.com/a/desired.json", "hello-2.tar.gz", NULL,
     "https://example.com/a/hello-2.tar.gz", "https://example.com/a/hello-2.tar.gz.minisig"},
    {"https://example.com/a/desired.json", "/b/h.tgz", "//keys.example.org/h.minisig",
     "https://example.com/b/h.tgz", "https://keys.example.org/h.minisig"},
    {"https://example.com/a/desired.json", "../../../h.tgz", NULL, "https://example.com/h.tgz",
     "https://example.com/h.tgz.minisig"},
    {"https://example.com/a/desired.json", "http://mirror.example.net/h.tgz", NULL,
     "http://mirror.example.net/h.tgz", "http://mirror.example.net/h.tgz.minisig"},
    {"https://example.com/a/desired.json", "file:///var/cache/h.tgz", NULL,
     "file:///var/cache/h.tgz", "file:///var/cache/h.tgz.minisig"},
    {NULL, "HTTPS://example.com/x/../h.tgz", NULL, "https://example.com/h.tgz",
     "https://example.com/h.tgz.minisig"},
};

START_TEST(test_relative_urls)
{
        _cleanup_free_ char *sig =
            urls[_i].signature ? xasprintf(",'signature':'%s'", urls[_i].signature) : xstrdup("");
        _cleanup_free_ char *d =
            svc_doc_printf("'artifact':{'url':'%s','sha256':'" SHA "','size':1%s},'exec':['bin/h']",
                           urls[_i].url, sig);
        _cleanup_(desired_freep) struct desired *out = parse_ok(d, urls[_i].base);

        ck_assert_str_eq(out->services[0].artifact_url, urls[_i].want_url);
        ck_assert_str_eq(out->services[0].signature_url, urls[_i].want_signature);
}
END_TEST

START_TEST(test_url_errors)
{
        assert_error(SVC_DOC("'artifact':{'url':'ftp://example.com/h.tgz','sha256':'" SHA
                             "','size':1},'exec':['bin/h']"),
                     "https://example.com/a/desired.json", -EINVAL,
                     "services.hello.artifact.url: unsupported URL scheme \"ftp\" (want file, "
                     "http or https)");
        assert_error(SVC_DOC("'artifact':{'url':'javascript:alert(1)','sha256':'" SHA
                             "','size':1},'exec':['bin/h']"),
                     "https://example.com/a/desired.json", -EINVAL,
                     "services.hello.artifact.url: not a valid URL");
        assert_error(SVC_DOC("'artifact':{'url':'h.tgz','sha256':'" SHA
                             "','size':1,'signature':'h.sig'},'exec':['bin/h']"),
                     "not a url", -EINVAL,
                     "services.hello.artifact.url: the document URL is not a valid base URL");
}
END_TEST

START_TEST(reserved_name_refused)
{
        const char *doc = "{\"format\":\"lii.desired/1\",\"serial\":1,\"services\":{\"store\":{"
                          "\"artifact\":{\"url\":\"a.tar.gz\",\"sha256\":"
                          "\"0000000000000000000000000000000000000000000000000000000000000000\","
                          "\"size\":1},\"exec\":[\"bin/x\"]}}}";
        struct desired *d = NULL;
        char *error = NULL;
        ck_assert_int_lt(desired_parse(doc, strlen(doc), "file:///srv/d.json", &d, &error), 0);
        ck_assert_str_eq(error,
                         "services.store: reserved name (lii keeps its artifact store under it)");
        free(error);
}
END_TEST

/* A refused document's serial is read when it is there and valid, so that
 * the refusal can be told apart from refusals of other documents. */
START_TEST(refused_document_serial)
{
        static const struct {
                const char *doc;
                long long serial; /* -1: none */
        } cases[] = {
            {"{\"format\":\"lii.desired/1\",\"serial\":7,\"services\":{\"hello\":{}}}", 7},
            {"{\"serial\":0,\"format\":\"other\"}", 0},
            {"{\"format\":\"lii.desired/1\",\"serial\":7,\"services\":", -1},
            {"{\"format\":\"lii.desired/1\",\"serial\":\"7\"}", -1},
            {"{\"format\":\"lii.desired/1\",\"serial\":-7}", -1},
            {"{\"serial\":7,\"serial\":8}", -1},
            {"[7]", -1},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint64_t serial = 12345;
                int r = desired_peek_serial(cases[i].doc, strlen(cases[i].doc), &serial);
                if (cases[i].serial < 0) {
                        ck_assert_msg(r == -ENODATA, "%s: %d", cases[i].doc, r);
                        ck_assert_uint_eq(serial, 12345);
                } else {
                        ck_assert_msg(r == 0, "%s: %d", cases[i].doc, r);
                        ck_assert_uint_eq(serial, (uint64_t)cases[i].serial);
                }
        }
}
END_TEST

static Suite *desired_suite(void)
{
        Suite *s = suite_create("desired");
        TCase *tc = tcase_create("parse");

        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_full_document);
        tcase_add_test(tc, test_defaults);
        tcase_add_test(tc, test_health_defaults);
        tcase_add_test(tc, test_other_kinds);
        tcase_add_test(tc, test_sorted_and_find);
        tcase_add_test(tc, test_empty_services);
        tcase_add_test(tc, test_outputs_untouched);
        tcase_add_loop_test(tc, test_errors, 0, ELEMENTSOF(errors));
        tcase_add_test(tc, test_limits);
        tcase_add_test(tc, test_too_many_services);
        tcase_add_test(tc, test_oversize);
        tcase_add_test(tc, test_not_strict_json);
        tcase_add_loop_test(tc, test_bad_strings, 0, ELEMENTSOF(bad_strings));
        tcase_add_test(tc, test_good_strings);
        tcase_add_test(tc, test_deep_nesting);
        tcase_add_loop_test(tc, test_canonical_same, 0, ELEMENTSOF(same_as_full));
        tcase_add_test(tc, test_canonical_defaults_spelled);
        tcase_add_test(tc, test_rollout_is_not_in_the_spec);
        tcase_add_test(tc, test_listen);
        tcase_add_loop_test(tc, test_canonical_changed, 0, ELEMENTSOF(changes));
        tcase_add_test(tc, test_canonical_health_removed);
        tcase_add_loop_test(tc, test_round_trip, 0, ELEMENTSOF(round_trip_docs));
        tcase_add_test(tc, test_spec_parse_errors);
        tcase_add_loop_test(tc, test_relative_urls, 0, ELEMENTSOF(urls));
        tcase_add_test(tc, test_url_errors);
        tcase_add_test(tc, reserved_name_refused);
        tcase_add_test(tc, refused_document_serial);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(desired_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
