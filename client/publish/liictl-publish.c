/* liictl-publish: the etcd half of `liictl publish`, a program of its own
 * so that liictl itself starts without libcurl and OpenSSL. liictl has
 * parsed and checked the command line and runs this in its place:
 *
 *   liictl-publish json|text URL DOC SIG CA_FILE CERT_FILE KEY_FILE USER
 *                  PASSWORD_FILE [PUB…]
 *
 * (an empty argument is an option not given). It checks the document as
 * liid will (strict JSON, the schema, absolute artifact URLs, expiry) and,
 * with PUB, the signature; reads PREFIX/desired/doc from etcd; refuses a
 * serial not above the one there; and writes the document and its
 * signature in one transaction guarded on the revision it read, so that
 * two publishers never overwrite each other unseen. Exit codes are
 * liictl's.
 *
 * Test hook: with LIICTL_PUBLISH_TEST_PAUSE_FIFO set to a FIFO's path, it
 * waits after reading etcd until a line arrives on that FIFO, so that
 * tests/integration/test_publish.c can publish in between and see the
 * transaction refused. Nothing else sets it. */
#include "liictl.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "desired.h"
#include "etcd-url.h"
#include "lii-version.h"
#include "minisign.h"

#define PAUSE_FIFO_ENV "LIICTL_PUBLISH_TEST_PAUSE_FIFO"
/* A range answer carries the document in base64, and a transaction's
 * failure branch the document and its signature: room for both and for
 * the JSON around them. */
#define ANSWER_MAX         ((size_t)4 * DESIRED_MAX_BYTES + 65536)
#define PASSWORD_MAX       4096
#define CONNECT_TIMEOUT_MS 5000L
#define REQUEST_TIMEOUT_MS 30000L
/* gRPC status codes in etcd's error answers. */
#define GRPC_DEADLINE_EXCEEDED 4
#define GRPC_PERMISSION_DENIED 7
#define GRPC_UNAVAILABLE       14
#define GRPC_UNAUTHENTICATED   16

struct publish {
        bool json;
        const char *url; /* as the user wrote it */
        struct etcd_url u;
        const char *ca_file, *cert_file, *key_file;
        const char *user;
        char *password;
        char *token;
        size_t endpoint; /* the member that answered last */
        char *doc_key, *sig_key;
        char *doc_key_b64, *sig_key_b64;

        const char *doc_path, *sig_path;
        char *doc, *sig;
        size_t doc_len, sig_len;
        uint64_t serial;
};

static void publish_done(struct publish *p)
{
        etcd_url_done(&p->u);
        if (p->password)
                explicit_bzero(p->password, strlen(p->password));
        free(p->password);
        free(p->token);
        free(p->doc_key);
        free(p->sig_key);
        free(p->doc_key_b64);
        free(p->sig_key_b64);
        free(p->doc);
        free(p->sig);
}

/* ---- the document and its signature ---- */

struct keyrings {
        struct minisign_keyring *k[LIICTL_PUBLISH_MAX_KEYS];
        size_t n;
};

static void keyrings_done(struct keyrings *r)
{
        for (size_t i = 0; i < r->n; i++)
                minisign_keyring_free(r->k[i]);
}

/* Says which keys there are, as a publisher who picked the wrong secret
 * key needs to see them. */
static char *keyrings_list(const struct keyrings *r, char **pubs)
{
        char *list = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&list, &len);
        if (!f)
                abort();
        size_t shown = 0;
        for (size_t i = 0; i < r->n; i++)
                for (size_t j = 0; j < r->k[i]->n; j++)
                        fprintf(f, "%s%s (%s)", shown++ ? ", " : "", r->k[i]->keys[j].key_id_string,
                                r->k[i]->keys[j].path ? r->k[i]->keys[j].path : pubs[i]);
        if (shown == 0)
                fputs("(the folders hold no key)", f);
        if (fclose(f) != 0)
                abort();
        return list;
}

/* Checks the signature against the keys of the --key options: the one
 * whose keyring holds the signature's key id decides. Returns a liictl
 * exit code, having said why on stderr when it is not 0. */
static int check_signature(struct publish *p, const struct minisign_sig *sig, char **pubs,
                           size_t n_pubs)
{
        _cleanup_(keyrings_done) struct keyrings rings = {0};
        for (; rings.n < n_pubs && rings.n < ELEMENTSOF(rings.k); rings.n++) {
                _cleanup_free_ char *error = NULL;
                int r = minisign_keyring_load_path(pubs[rings.n], &rings.k[rings.n], &error);
                if (r < 0) {
                        _cleanup_free_ char *e = ctl_printable(error);
                        fprintf(stderr, "liictl: key: %s\n", e);
                        /* A weak key is a refusal, as liid would refuse it;
                         * a key that cannot be read is a mistake on the
                         * command line. */
                        return r == -EKEYREJECTED ? LIICTL_EXIT_FAILED : LIICTL_EXIT_USAGE;
                }
        }
        for (size_t i = 0; i < rings.n; i++) {
                if (!minisign_keyring_find(rings.k[i], sig->key_id))
                        continue;
                _cleanup_free_ char *error = NULL;
                const struct minisign_key *by;
                if (minisign_verify_buffer(rings.k[i], sig, p->doc, p->doc_len, 0, &by, &error) <
                    0) {
                        _cleanup_free_ char *e = ctl_printable(error);
                        fprintf(stderr, "liictl: %s: the signature by key %s does not hold: %s\n",
                                p->doc_path, sig->key_id_string, e);
                        return LIICTL_EXIT_FAILED;
                }
                return LIICTL_EXIT_OK;
        }
        _cleanup_free_ char *list = keyrings_list(&rings, pubs);
        _cleanup_free_ char *l = ctl_printable(list);
        fprintf(stderr, "liictl: %s: signed by key %s, which is none of the --key keys: %s\n",
                p->doc_path, sig->key_id_string, l);
        return LIICTL_EXIT_FAILED;
}

/* Everything liid would check before it applies the document, except the
 * serial (against etcd's, below) and the keys when none were given. */
static int check_document(struct publish *p, char **pubs, size_t n_pubs)
{
        int r = read_file_capped(p->doc_path, DESIRED_MAX_BYTES, &p->doc, &p->doc_len);
        if (r < 0) {
                fprintf(stderr, "liictl: %s: %s\n", p->doc_path,
                        r == -EFBIG ? "larger than liid takes (1 MiB)" : read_file_strerror(r));
                return LIICTL_EXIT_FAILED;
        }
        r = read_file_capped(p->sig_path, MINISIGN_SIG_FILE_MAX, &p->sig, &p->sig_len);
        if (r < 0) {
                fprintf(stderr, "liictl: signature %s: %s\n", p->sig_path,
                        r == -EFBIG ? "too large for a signature file" : read_file_strerror(r));
                return LIICTL_EXIT_FAILED;
        }
        _cleanup_free_ char *error = NULL;
        _cleanup_(minisign_sig_freep) struct minisign_sig *sig = NULL;
        if (minisign_sig_parse(p->sig, p->sig_len, &sig, &error) < 0) {
                _cleanup_free_ char *e = ctl_printable(error);
                fprintf(stderr, "liictl: signature %s: %s\n", p->sig_path, e);
                return LIICTL_EXIT_FAILED;
        }
        /* liid takes only the prehashed form, whoever signed it. */
        if (!sig->prehashed) {
                fprintf(stderr,
                        "liictl: signature %s: a legacy (non-prehashed) signature, which liid "
                        "refuses: sign again with a current minisign (without -l)\n",
                        p->sig_path);
                return LIICTL_EXIT_FAILED;
        }
        if (n_pubs > 0) {
                r = check_signature(p, sig, pubs, n_pubs);
                if (r != LIICTL_EXIT_OK)
                        return r;
        } else {
                fprintf(stderr,
                        "liictl: %s: the signature (key %s) was not checked: no --key given; "
                        "liid checks it against its own keys\n",
                        p->sig_path, sig->key_id_string);
        }

        /* The etcd URL as the base: a relative artifact URL is refused, as
         * liid refuses it in a document from etcd. */
        _cleanup_(desired_freep) struct desired *d = NULL;
        free(error);
        error = NULL;
        if (desired_parse(p->doc, p->doc_len, p->url, &d, &error) < 0) {
                _cleanup_free_ char *e = ctl_printable(error);
                fprintf(stderr, "liictl: %s: %s\n", p->doc_path, e);
                return LIICTL_EXIT_FAILED;
        }
        if (d->expires_usec && d->expires_usec <= now_realtime_usec()) {
                char when[RFC3339_MAX];
                format_rfc3339(d->expires_usec, when);
                fprintf(stderr, "liictl: %s: expired at %s: liid would refuse it\n", p->doc_path,
                        when);
                return LIICTL_EXIT_FAILED;
        }
        p->serial = d->serial;
        return LIICTL_EXIT_OK;
}

/* ---- etcd's JSON gateway ---- */

struct answer {
        long status;
        char *body;
        size_t len;
        json_object *root;
        bool too_large;
        int code;    /* the gRPC code of an error answer, 0 for none */
        char *error; /* the message of an error answer */
};

static void answer_done(struct answer *a)
{
        free(a->body);
        json_object_put(a->root);
        free(a->error);
        *a = (struct answer){0};
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
        struct answer *a = userdata;
        size_t n = size * nmemb;
        if (n > ANSWER_MAX - a->len) {
                a->too_large = true;
                return 0; /* curl fails the transfer: CURLE_WRITE_ERROR */
        }
        char *b = realloc(a->body, a->len + n + 1);
        if (!b)
                return 0;
        memcpy(b + a->len, ptr, n);
        a->body = b;
        a->len += n;
        b[a->len] = '\0';
        return n;
}

/* 64-bit numbers come as JSON strings, and zero values are left out. */
static int64_t get_int64(json_object *o, const char *key)
{
        json_object *v;
        if (!o || !json_object_object_get_ex(o, key, &v) || !v)
                return 0;
        if (json_object_is_type(v, json_type_int))
                return json_object_get_int64(v);
        if (!json_object_is_type(v, json_type_string))
                return -1;
        const char *s = json_object_get_string(v);
        char *end;
        errno = 0;
        long long n = strtoll(s, &end, 10);
        return !*s || *end || errno || n < 0 ? -1 : n;
}

/* What a request's failure means for what comes next. */
enum {
        CALL_NOT_SENT = -ENOTCONN, /* no connection: nothing reached etcd */
        CALL_LOST = -EIO,          /* the request may have reached etcd, the answer did not */
};

/* One POST to one member. Returns 0 when it answered with JSON (an error
 * answer too: a->error), or CALL_NOT_SENT or CALL_LOST with *ret_reason. */
static int call(struct publish *p, size_t ep, const char *path, const char *body, struct answer *a,
                char **ret_reason)
{
        *a = (struct answer){0};
        _cleanup_free_ char *url = xasprintf("%s%s", p->u.endpoints[ep], path);
        CURL *easy = curl_easy_init();
        if (!easy)
                abort();
        struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
        if (p->token && strcmp(path, "/v3/auth/authenticate") != 0) {
                _cleanup_free_ char *h = xasprintf("Authorization: %s", p->token);
                headers = curl_slist_append(headers, h);
        }
        char errbuf[CURL_ERROR_SIZE] = "";
        curl_easy_setopt(easy, CURLOPT_URL, url);
        curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
        /* etcd serves gRPC and the gateway on one port and tells them apart
         * by the protocol: HTTP/2 would be taken for gRPC. */
        curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
        curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
        curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, REQUEST_TIMEOUT_MS);
        curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
        if (p->u.tls) {
                curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
                curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
                if (p->ca_file)
                        curl_easy_setopt(easy, CURLOPT_CAINFO, p->ca_file);
                if (p->cert_file)
                        curl_easy_setopt(easy, CURLOPT_SSLCERT, p->cert_file);
                if (p->key_file)
                        curl_easy_setopt(easy, CURLOPT_SSLKEY, p->key_file);
        }
        curl_easy_setopt(easy, CURLOPT_USERAGENT, "liictl/" LII_VERSION);
        curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(easy, CURLOPT_WRITEDATA, a);
        CURLcode res = curl_easy_perform(easy);
        curl_off_t pretransfer = 0;
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &a->status);
        curl_easy_getinfo(easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer);
        curl_easy_cleanup(easy);
        curl_slist_free_all(headers);

        if (res != CURLE_OK) {
                *ret_reason = xasprintf("%s", a->too_large ? "an answer too large"
                                              : *errbuf    ? errbuf
                                                           : curl_easy_strerror(res));
                answer_done(a);
                /* Before the transfer began nothing was sent: the
                 * connection, or its TLS handshake, failed. */
                return pretransfer == 0 ? CALL_NOT_SENT : CALL_LOST;
        }
        a->root = a->body ? json_tokener_parse(a->body) : NULL;
        if (!a->root || !json_object_is_type(a->root, json_type_object)) {
                *ret_reason = xasprintf("HTTP %ld without a JSON answer", a->status);
                answer_done(a);
                return CALL_LOST;
        }
        json_object *v;
        if (json_object_object_get_ex(a->root, "error", &v) ||
            json_object_object_get_ex(a->root, "message", &v)) {
                const char *msg = NULL;
                if (json_object_object_get_ex(a->root, "message", &v) &&
                    json_object_is_type(v, json_type_string))
                        msg = json_object_get_string(v);
                else if (json_object_object_get_ex(a->root, "error", &v) &&
                         json_object_is_type(v, json_type_string))
                        msg = json_object_get_string(v);
                a->error = xstrdup(msg ? msg : "an error without a message");
                if (json_object_object_get_ex(a->root, "code", &v))
                        a->code = json_object_get_int(v);
        } else if (a->status != 200) {
                a->error = xasprintf("HTTP %ld", a->status);
        }
        return 0;
}

static bool invalid_token(const struct answer *a)
{
        return a->error && strstr(a->error, "invalid auth token");
}

/* Gets a token from member ep. Returns 0, -EACCES when etcd refused the
 * user (*ret_reason says why), or a call() failure. */
static int authenticate(struct publish *p, size_t ep, char **ret_reason)
{
        _cleanup_json_ json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(p->user));
        json_object_object_add(o, "password", json_object_new_string(p->password));
        const char *body = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        struct answer a;
        int r = call(p, ep, "/v3/auth/authenticate", body, &a, ret_reason);
        if (r < 0)
                return r;
        json_object *t;
        if (!a.error && json_object_object_get_ex(a.root, "token", &t) &&
            json_object_is_type(t, json_type_string) && json_object_get_string_len(t) > 0 &&
            !strpbrk(json_object_get_string(t), "\r\n")) {
                free(p->token);
                p->token = xstrdup(json_object_get_string(t));
                answer_done(&a);
                return 0;
        }
        *ret_reason = xasprintf("authentication as %s failed: %s", p->user,
                                a.error ? a.error : "no token in the answer");
        answer_done(&a);
        return -EACCES;
}

/* Sends a request to the members in turn, from the one that answered
 * last, until one gives an answer that settles it: a success, or an error
 * that another member would repeat (permission denied, a bad request). A
 * member that cannot be reached, does not answer in time or has no leader
 * is left for the next. An expired token is renewed once per member.
 * Returns 0 with *ret; -EACCES when etcd refused the user; or
 * -EHOSTUNREACH when no member settled it, with the reason of each in
 * *ret_error. *maybe_sent is set when a request may have reached etcd
 * without its answer reaching us (only a transaction cares). */
static int request(struct publish *p, const char *path, const char *body, struct answer *ret,
                   bool *maybe_sent, char **ret_error)
{
        _cleanup_free_ char *reasons = NULL;
        size_t len = 0;
        _cleanup_fclose_ FILE *f = open_memstream(&reasons, &len);
        if (!f)
                abort();
        for (size_t k = 0; k < p->u.n_endpoints; k++) {
                size_t ep = (p->endpoint + k) % p->u.n_endpoints;
                _cleanup_free_ char *reason = NULL;
                struct answer a = {0};
                int r = 0;
                bool sent = false; /* the request itself, not a token's */
                for (int attempt = 0; attempt < 2; attempt++) {
                        answer_done(&a);
                        free(reason);
                        reason = NULL;
                        if (p->user && !p->token) {
                                r = authenticate(p, ep, &reason);
                                if (r == -EACCES) {
                                        *ret_error = TAKE_PTR(reason);
                                        return r;
                                }
                                if (r < 0)
                                        break;
                        }
                        sent = true;
                        r = call(p, ep, path, body, &a, &reason);
                        if (r < 0 || !invalid_token(&a) || !p->user)
                                break;
                        /* Tokens expire, and die with the member that
                         * issued them. */
                        free(p->token);
                        p->token = NULL;
                }
                if (r == 0 && a.error &&
                    (a.code == GRPC_UNAVAILABLE || a.code == GRPC_DEADLINE_EXCEEDED ||
                     a.status >= 500)) {
                        /* No leader, or the request timed out inside etcd,
                         * where it may still be applied. */
                        reason = xasprintf("%s", a.error);
                        r = CALL_LOST;
                }
                if (r == 0) {
                        p->endpoint = ep;
                        *ret = a;
                        return 0;
                }
                answer_done(&a);
                if (r == CALL_LOST && sent)
                        *maybe_sent = true;
                fprintf(f, "%s%s: %s", k ? "; " : "", p->u.endpoints[ep], reason);
        }
        if (fclose(TAKE_PTR(f)) != 0)
                abort();
        *ret_error = TAKE_PTR(reasons);
        return -EHOSTUNREACH;
}

/* The exit code for a request() that failed, having said why. */
static int request_failed(int r, const char *what, const char *error)
{
        _cleanup_free_ char *e = ctl_printable(error);
        if (r == -EACCES) {
                fprintf(stderr, "liictl: %s: %s\n", what, e);
                return LIICTL_EXIT_DENIED;
        }
        fprintf(stderr, "liictl: %s: no etcd member answered: %s\n", what, e);
        return LIICTL_EXIT_UNREACHABLE;
}

/* The exit code for an error answer, having said why. */
static int answer_refused(struct publish *p, const char *what, const struct answer *a)
{
        _cleanup_free_ char *e = ctl_printable(a->error);
        if (a->code == GRPC_PERMISSION_DENIED || a->code == GRPC_UNAUTHENTICATED ||
            (a->error && strstr(a->error, "user name is empty"))) {
                fprintf(stderr, "liictl: %s: etcd: %s%s\n", what, e,
                        p->user ? ""
                                : " (etcd wants a user: --user NAME --password-file FILE, "
                                  "or a client certificate)");
                return LIICTL_EXIT_DENIED;
        }
        fprintf(stderr, "liictl: %s: etcd: %s\n", what, e);
        return LIICTL_EXIT_FAILED;
}

/* A key-value of a range answer: whether the key is there, its value and
 * revisions. */
struct kv {
        bool found;
        char *value;
        size_t value_len;
        int64_t mod_revision;
};

static int kv_parse(json_object *range, const char *key, struct kv *ret)
{
        json_object *kvs;
        *ret = (struct kv){0};
        if (!json_object_object_get_ex(range, "kvs", &kvs))
                return 0;
        if (!json_object_is_type(kvs, json_type_array))
                return -EBADMSG;
        for (size_t i = 0; i < json_object_array_length(kvs); i++) {
                json_object *kv = json_object_array_get_idx(kvs, i), *k, *v;
                if (!json_object_object_get_ex(kv, "key", &k) ||
                    !json_object_is_type(k, json_type_string) ||
                    strcmp(json_object_get_string(k), key) != 0)
                        continue;
                const char *text = "";
                size_t len = 0;
                if (json_object_object_get_ex(kv, "value", &v)) {
                        if (!json_object_is_type(v, json_type_string))
                                return -EBADMSG;
                        text = json_object_get_string(v);
                        len = (size_t)json_object_get_string_len(v);
                }
                const char *why;
                size_t at;
                if (base64_decode(text, len, (uint8_t **)&ret->value, &ret->value_len, &why, &at) <
                    0)
                        return -EBADMSG;
                ret->mod_revision = get_int64(kv, "mod_revision");
                if (ret->mod_revision <= 0) {
                        free(ret->value);
                        ret->value = NULL;
                        return -EBADMSG;
                }
                ret->found = true;
                return 0;
        }
        return 0;
}

/* What PREFIX/desired/doc holds now. */
struct current {
        bool found;
        int64_t mod_revision;
        bool has_serial;
        uint64_t serial;
        bool same; /* the bytes being published */
};

static int current_from_kv(struct publish *p, const struct kv *kv, struct current *ret)
{
        *ret = (struct current){.found = kv->found, .mod_revision = kv->mod_revision};
        if (!kv->found)
                return 0;
        ret->has_serial = desired_peek_serial(kv->value, kv->value_len, &ret->serial) == 0;
        ret->same = kv->value_len == p->doc_len && memcmp(kv->value, p->doc, p->doc_len) == 0;
        return 0;
}

static int read_current(struct publish *p, struct current *ret)
{
        _cleanup_free_ char *body = xasprintf("{\"key\":\"%s\"}", p->doc_key_b64);
        _cleanup_free_ char *error = NULL;
        _cleanup_free_ char *what = xasprintf("reading %s", p->doc_key);
        struct answer a;
        bool maybe_sent = false;
        int r = request(p, "/v3/kv/range", body, &a, &maybe_sent, &error);
        if (r < 0)
                return request_failed(r, what, error);
        if (a.error) {
                r = answer_refused(p, what, &a);
                answer_done(&a);
                return r;
        }
        struct kv kv;
        if (kv_parse(a.root, p->doc_key_b64, &kv) < 0) {
                fprintf(stderr, "liictl: %s: etcd's answer is malformed\n", what);
                answer_done(&a);
                return LIICTL_EXIT_FAILED;
        }
        current_from_kv(p, &kv, ret);
        free(kv.value);
        answer_done(&a);
        return LIICTL_EXIT_OK;
}

/* The test hook (see the top of the file): blocks until a test has
 * written a line to the FIFO, or closed it. */
static void test_pause(void)
{
        const char *fifo = getenv(PAUSE_FIFO_ENV);
        if (!fifo || !*fifo)
                return;
        _cleanup_close_ int fd = open(fifo, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                fprintf(stderr, "liictl: %s=%s: %m\n", PAUSE_FIFO_ENV, fifo);
                return;
        }
        char c;
        while (read(fd, &c, 1) == 1 && c != '\n')
                ;
}

static json_object *put_op(const char *key_b64, const char *value, size_t len)
{
        json_object *put = json_object_new_object();
        json_object_object_add(put, "key", json_object_new_string(key_b64));
        _cleanup_free_ char *b64 = base64_encode(value, len);
        json_object_object_add(put, "value", json_object_new_string(b64));
        json_object *op = json_object_new_object();
        json_object_object_add(op, "request_put", put);
        return op;
}

static json_object *range_op(const char *key_b64)
{
        json_object *range = json_object_new_object();
        json_object_object_add(range, "key", json_object_new_string(key_b64));
        json_object *op = json_object_new_object();
        json_object_object_add(op, "request_range", range);
        return op;
}

/* The document and its signature, in one transaction that holds only if
 * desired/doc is still what was read. Its failure branch reads both keys,
 * which says what is there instead. */
static char *txn_body(struct publish *p, const struct current *cur)
{
        _cleanup_json_ json_object *o = json_object_new_object();
        json_object *cmp = json_object_new_object();
        json_object_object_add(cmp, "key", json_object_new_string(p->doc_key_b64));
        json_object_object_add(cmp, "result", json_object_new_string("EQUAL"));
        if (cur->found) {
                json_object_object_add(cmp, "target", json_object_new_string("MOD"));
                _cleanup_free_ char *rev = xasprintf("%lld", (long long)cur->mod_revision);
                json_object_object_add(cmp, "mod_revision", json_object_new_string(rev));
        } else {
                json_object_object_add(cmp, "target", json_object_new_string("CREATE"));
                json_object_object_add(cmp, "create_revision", json_object_new_string("0"));
        }
        json_object *compare = json_object_new_array();
        json_object_array_add(compare, cmp);
        json_object_object_add(o, "compare", compare);
        json_object *success = json_object_new_array();
        json_object_array_add(success, put_op(p->doc_key_b64, p->doc, p->doc_len));
        json_object_array_add(success, put_op(p->sig_key_b64, p->sig, p->sig_len));
        json_object_object_add(o, "success", success);
        json_object *failure = json_object_new_array();
        json_object_array_add(failure, range_op(p->doc_key_b64));
        json_object_array_add(failure, range_op(p->sig_key_b64));
        json_object_object_add(o, "failure", failure);
        return xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                             JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* The i-th range of a failed transaction's answer. */
static json_object *txn_range(json_object *root, size_t i)
{
        json_object *responses, *range;
        if (!json_object_object_get_ex(root, "responses", &responses) ||
            !json_object_is_type(responses, json_type_array) ||
            i >= json_object_array_length(responses) ||
            !json_object_object_get_ex(json_object_array_get_idx(responses, i), "response_range",
                                       &range))
                return NULL;
        return range;
}

static void print_published(struct publish *p, int64_t revision)
{
        if (p->json) {
                _cleanup_json_ json_object *o = json_object_new_object();
                json_object_object_add(o, "serial", json_object_new_uint64(p->serial));
                json_object_object_add(o, "revision", json_object_new_int64(revision));
                json_object_object_add(o, "url", json_object_new_string(p->url));
                puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                           JSON_C_TO_STRING_NOSLASHESCAPE));
                return;
        }
        _cleanup_free_ char *url = ctl_printable(p->url);
        printf("published serial %llu to %s (revision %lld)\n", (unsigned long long)p->serial, url,
               (long long)revision);
}

static int write_txn(struct publish *p, const struct current *read)
{
        _cleanup_free_ char *body = txn_body(p, read);
        _cleanup_free_ char *error = NULL;
        _cleanup_free_ char *what = xasprintf("writing %s", p->doc_key);
        struct answer a;
        bool maybe_sent = false;
        int r = request(p, "/v3/kv/txn", body, &a, &maybe_sent, &error);
        if (r < 0) {
                if (!maybe_sent)
                        return request_failed(r, what, error);
                _cleanup_free_ char *e = ctl_printable(error);
                fprintf(stderr,
                        "liictl: %s: the transaction may or may not have been applied (%s): read "
                        "%s before publishing again\n",
                        what, e, p->doc_key);
                return LIICTL_EXIT_FAILED;
        }
        if (a.error) {
                r = answer_refused(p, what, &a);
                answer_done(&a);
                return r;
        }
        json_object *v;
        if (json_object_object_get_ex(a.root, "succeeded", &v) && json_object_get_boolean(v)) {
                json_object *header = NULL;
                json_object_object_get_ex(a.root, "header", &header);
                int64_t revision = get_int64(header, "revision");
                answer_done(&a);
                print_published(p, revision);
                return LIICTL_EXIT_OK;
        }

        /* The compare failed: desired/doc changed since it was read. */
        struct kv doc = {0}, sig = {0};
        struct current now = {0};
        bool parsed = kv_parse(txn_range(a.root, 0), p->doc_key_b64, &doc) == 0 &&
                      kv_parse(txn_range(a.root, 1), p->sig_key_b64, &sig) == 0;
        if (parsed)
                current_from_kv(p, &doc, &now);
        bool ours = parsed && now.same && sig.found && sig.value_len == p->sig_len &&
                    memcmp(sig.value, p->sig, p->sig_len) == 0;
        free(doc.value);
        free(sig.value);
        answer_done(&a);
        /* A member that took the transaction but whose answer was lost
         * makes the next member's compare fail on our own write. */
        if (maybe_sent && ours) {
                print_published(p, now.mod_revision);
                return LIICTL_EXIT_OK;
        }
        _cleanup_free_ char *there = NULL;
        if (!parsed)
                there = xstrdup("");
        else if (!now.found)
                there = xasprintf(": %s is gone now", p->doc_key);
        else if (now.has_serial)
                there = xasprintf(": %s is serial %llu at revision %lld now", p->doc_key,
                                  (unsigned long long)now.serial, (long long)now.mod_revision);
        else
                there = xasprintf(": %s is at revision %lld now", p->doc_key,
                                  (long long)now.mod_revision);
        fprintf(stderr,
                "liictl: etcd changed under us (another publish?): read again and retry%s; "
                "nothing was written\n",
                there);
        return LIICTL_EXIT_FAILED;
}

static int publish(struct publish *p)
{
        struct current cur;
        int r = read_current(p, &cur);
        if (r != LIICTL_EXIT_OK)
                return r;
        _cleanup_free_ char *url = ctl_printable(p->url);
        if (cur.found && cur.has_serial && p->serial <= cur.serial) {
                fprintf(stderr,
                        "liictl: %s: serial %llu is not above serial %llu, which %s holds "
                        "(revision %lld): %s\n",
                        p->doc_path, (unsigned long long)p->serial, (unsigned long long)cur.serial,
                        url, (long long)cur.mod_revision,
                        cur.same ? "this very document is published already"
                                 : "publish it with a higher serial");
                return LIICTL_EXIT_FAILED;
        }
        if (cur.found && !cur.has_serial)
                fprintf(stderr,
                        "liictl: warning: %s holds no document with a serial (revision %lld): "
                        "publishing over it\n",
                        p->doc_key, (long long)cur.mod_revision);
        test_pause();
        return write_txn(p, &cur);
}

static int read_password(struct publish *p, const char *path)
{
        size_t len;
        int r = read_file_capped(path, PASSWORD_MAX, &p->password, &len);
        if (r < 0) {
                fprintf(stderr, "liictl: --password-file %s: %s\n", path,
                        r == -EFBIG ? "too large for a password" : read_file_strerror(r));
                return LIICTL_EXIT_USAGE;
        }
        /* The file's last line break is not part of the password. */
        while (len > 0 && (p->password[len - 1] == '\n' || p->password[len - 1] == '\r'))
                p->password[--len] = '\0';
        if (strlen(p->password) != len || len == 0) {
                fprintf(stderr, "liictl: --password-file %s: %s\n", path,
                        len == 0 ? "empty" : "holds a NUL byte");
                return LIICTL_EXIT_USAGE;
        }
        return LIICTL_EXIT_OK;
}

static const char *opt(const char *s)
{
        return s && *s ? s : NULL;
}

enum {
        ARG_MODE = 1,
        ARG_URL,
        ARG_DOC,
        ARG_SIG,
        ARG_CA,
        ARG_CERT,
        ARG_KEY,
        ARG_USER,
        ARG_PASSWORD,
        ARG_PUBS,
};

int main(int argc, char **argv)
{
        if (argc < ARG_PUBS ||
            (strcmp(argv[ARG_MODE], "json") != 0 && strcmp(argv[ARG_MODE], "text") != 0)) {
                fprintf(stderr, "liictl-publish: run by `liictl publish`, not by hand\n");
                return LIICTL_EXIT_USAGE;
        }
        struct publish p = {
            .json = strcmp(argv[ARG_MODE], "json") == 0,
            .url = argv[ARG_URL],
            .doc_path = argv[ARG_DOC],
            .sig_path = argv[ARG_SIG],
            .ca_file = opt(argv[ARG_CA]),
            .cert_file = opt(argv[ARG_CERT]),
            .key_file = opt(argv[ARG_KEY]),
            .user = opt(argv[ARG_USER]),
        };
        _cleanup_free_ char *error = NULL;
        if (etcd_url_parse(p.url, &p.u, &error) < 0) {
                _cleanup_free_ char *e = ctl_printable(error);
                fprintf(stderr, "liictl: --etcd: %s\n", e);
                return LIICTL_EXIT_USAGE;
        }
        p.doc_key = xasprintf("%s/desired/doc", p.u.prefix);
        p.sig_key = xasprintf("%s/desired/sig", p.u.prefix);
        p.doc_key_b64 = base64_encode(p.doc_key, strlen(p.doc_key));
        p.sig_key_b64 = base64_encode(p.sig_key, strlen(p.sig_key));

        int ret = check_document(&p, argv + ARG_PUBS, (size_t)(argc - ARG_PUBS));
        if (ret == LIICTL_EXIT_OK && p.user)
                ret = read_password(&p, argv[ARG_PASSWORD]);
        if (ret == LIICTL_EXIT_OK) {
                if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                        abort();
                ret = publish(&p);
                curl_global_cleanup();
        }
        publish_done(&p);
        if (fflush(stdout) != 0 && ret == LIICTL_EXIT_OK) {
                fprintf(stderr, "liictl: cannot write the output: %m\n");
                ret = LIICTL_EXIT_FAILED;
        }
        return ret;
}
