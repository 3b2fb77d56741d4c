/* The test etcd cluster; see etcd.h. */
#include "etcd.h"
#include "harness.h"

#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct body {
        char *data;
        size_t len;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
        struct body *b = userdata;
        size_t n = size * nmemb;
        char *p = realloc(b->data, b->len + n + 1);
        ck_assert_ptr_nonnull(p);
        memcpy(p + b->len, ptr, n);
        b->data = p;
        b->len += n;
        p[b->len] = '\0';
        return n;
}

/* A POST (body) or GET (body NULL) to one member; returns the HTTP status,
 * 0 when it does not answer. */
static long request(struct h_etcd *e, int port, const char *path, const char *body,
                    const char *token, char **ret)
{
        char url[256];
        snprintf(url, sizeof url, "%s://127.0.0.1:%d%s", e->tls ? "https" : "http", port, path);
        struct body b = {0};
        CURL *c = curl_easy_init();
        if (e->tls) {
                curl_easy_setopt(c, CURLOPT_CAINFO, e->ca_file);
                curl_easy_setopt(c, CURLOPT_SSLCERT, e->cert_file);
                curl_easy_setopt(c, CURLOPT_SSLKEY, e->key_file);
        }
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
        if (body)
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        struct curl_slist *headers = NULL;
        if (token) {
                char h[512];
                snprintf(h, sizeof h, "Authorization: %s", token);
                headers = curl_slist_append(NULL, h);
                curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
        }
        long status = 0;
        if (curl_easy_perform(c) == CURLE_OK)
                curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_slist_free_all(headers);
        curl_easy_cleanup(c);
        if (ret)
                *ret = b.data;
        else
                free(b.data);
        return status;
}

static bool healthy(struct h_etcd *e, int port)
{
        char *out = NULL;
        long status = request(e, port, "/health", NULL, NULL, &out);
        bool ok = status == 200 && out && strstr(out, "\"true\"");
        free(out);
        return ok;
}

static void spawn(struct h_etcd *e, int i)
{
        char name[16], data[700], log[700], client[64], peer[64];
        snprintf(name, sizeof name, "m%d", i);
        snprintf(data, sizeof data, "%s/%s.data", e->dir, name);
        snprintf(log, sizeof log, "%s/%s.log", e->dir, name);
        snprintf(client, sizeof client, "%s://127.0.0.1:%d", e->tls ? "https" : "http",
                 e->client_port[i]);
        char cert[720], key[720], ca[720];
        snprintf(cert, sizeof cert, "--cert-file=%s/server.pem", e->dir);
        snprintf(key, sizeof key, "--key-file=%s/server.key", e->dir);
        snprintf(ca, sizeof ca, "--trusted-ca-file=%s", e->ca_file);
        char ttl[32];
        snprintf(ttl, sizeof ttl, "--auth-token-ttl=%d",
                 e->auth_token_ttl ? e->auth_token_ttl : 300);
        char *argv[] = {"etcd", "--name", name, "--data-dir", data, "--listen-client-urls", client,
                        "--advertise-client-urls", client, "--listen-peer-urls", peer,
                        "--initial-advertise-peer-urls", peer, "--initial-cluster",
                        e->initial_cluster, "--initial-cluster-token", e->dir,
                        "--initial-cluster-state", "new", ttl,
                        /* TLS on the client port only; peers speak plain HTTP. */
                        e->tls ? "--client-cert-auth" : NULL, cert, key, ca, NULL};
        snprintf(peer, sizeof peer, "http://127.0.0.1:%d", e->peer_port[i]);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                /* etcd must not outlive a test that fails before teardown. */
                prctl(PR_SET_PDEATHSIG, SIGTERM);
                int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                dup2(fd, STDOUT_FILENO);
                dup2(fd, STDERR_FILENO);
                execvp("etcd", argv);
                _exit(127);
        }
        e->pid[i] = pid;
}

/* Waits (20 s at most) until member i answers /health. */
static void wait_healthy(struct h_etcd *e, int i)
{
        for (int waited = 0; !healthy(e, e->client_port[i]); waited += 100) {
                int status;
                if (waitpid(e->pid[i], &status, WNOHANG) == e->pid[i]) {
                        e->pid[i] = 0;
                        ck_abort_msg("etcd member %d exited (status %d); see %s/m%d.log", i, status,
                                     e->dir, i);
                }
                ck_assert_msg(waited < 20000, "etcd member %d not healthy within 20 s", i);
                usleep(100 * 1000);
        }
}

static void start(struct h_etcd *e)
{
        size_t off = 0;
        for (int i = 0; i < H_ETCD_MEMBERS; i++) {
                e->client_port[i] = h_free_port();
                e->peer_port[i] = h_free_port();
                off +=
                    (size_t)snprintf(e->initial_cluster + off, sizeof e->initial_cluster - off,
                                     "%sm%d=http://127.0.0.1:%d", i ? "," : "", i, e->peer_port[i]);
        }
        for (int i = 0; i < H_ETCD_MEMBERS; i++)
                spawn(e, i);
        for (int i = 0; i < H_ETCD_MEMBERS; i++)
                wait_healthy(e, i);
}

void h_etcd_start(struct h_etcd *e, const char *dir)
{
        int ttl = e->auth_token_ttl;
        memset(e, 0, sizeof *e);
        e->auth_token_ttl = ttl;
        snprintf(e->dir, sizeof e->dir, "%s", dir);
        mkdir(e->dir, 0700);
        start(e);
}

/* A CA, a server certificate for 127.0.0.1 and a client certificate. The
 * server's may also authenticate clients: etcd's gateway dials the member's
 * gRPC side with it, and --client-cert-auth refuses it otherwise. */
void h_etcd_start_tls(struct h_etcd *e, const char *dir)
{
        memset(e, 0, sizeof *e);
        snprintf(e->dir, sizeof e->dir, "%s", dir);
        mkdir(e->dir, 0700);
        e->tls = true;
        char cmd[4096];
        snprintf(cmd, sizeof cmd,
                 "set -e; cd '%s'; ec='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'; "
                 "openssl req -x509 $ec -keyout ca.key -out ca.pem -days 2 "
                 "-subj /CN=lii-etcd-test-ca 2>/dev/null; "
                 "for n in server client; do "
                 "openssl req $ec -keyout $n.key -out $n.csr -subj /CN=$n 2>/dev/null; done; "
                 "printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth,clientAuth\\n' "
                 "> s.ext; "
                 "printf 'extendedKeyUsage=clientAuth\\n' > c.ext; "
                 "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
                 "-out server.pem -days 2 -extfile s.ext 2>/dev/null; "
                 "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
                 "-out client.pem -days 2 -extfile c.ext 2>/dev/null",
                 e->dir);
        ck_assert_int_eq(system(cmd), 0);
        snprintf(e->ca_file, sizeof e->ca_file, "%s/ca.pem", e->dir);
        snprintf(e->cert_file, sizeof e->cert_file, "%s/client.pem", e->dir);
        snprintf(e->key_file, sizeof e->key_file, "%s/client.key", e->dir);
        start(e);
}

void h_etcd_enable_auth(struct h_etcd *e, const char *user, const char *password,
                        const char *prefix)
{
        char cmd[2048];
        snprintf(cmd, sizeof cmd,
                 "set -e; c='etcdctl --endpoints=127.0.0.1:%d'; "
                 "$c user add root --new-user-password=rootpw >/dev/null; "
                 "$c user grant-role root root >/dev/null; "
                 "$c user add '%s' --new-user-password='%s' >/dev/null; "
                 "$c role add reader >/dev/null; "
                 "$c role grant-permission reader read '%s/' --prefix=true >/dev/null; "
                 "$c user grant-role '%s' reader >/dev/null; "
                 "$c auth enable >/dev/null",
                 e->client_port[0], user, password, prefix, user);
        ck_assert_int_eq(system(cmd), 0);
        snprintf(e->root_password, sizeof e->root_password, "rootpw");
}

void h_etcd_stop_member(struct h_etcd *e, int i)
{
        if (e->pid[i] <= 0)
                return;
        kill(e->pid[i], SIGTERM);
        int status;
        waitpid(e->pid[i], &status, 0);
        e->pid[i] = 0;
}

void h_etcd_start_member(struct h_etcd *e, int i)
{
        spawn(e, i);
        wait_healthy(e, i);
}

void h_etcd_stop(struct h_etcd *e)
{
        for (int i = 0; i < H_ETCD_MEMBERS; i++)
                h_etcd_stop_member(e, i);
}

void h_etcd_url(struct h_etcd *e, int first, const char *prefix, char *buf, size_t size)
{
        size_t off = (size_t)snprintf(buf, size, "%s://", e->tls ? "etcds" : "etcd");
        for (int k = 0; k < H_ETCD_MEMBERS; k++)
                off += (size_t)snprintf(buf + off, size - off, "%s127.0.0.1:%d", k ? "," : "",
                                        e->client_port[(first + k) % H_ETCD_MEMBERS]);
        snprintf(buf + off, size - off, "/%s", prefix);
}

static char *base64(const void *data, size_t len)
{
        char *out = malloc(4 * ((len + 2) / 3) + 1);
        ck_assert_ptr_nonnull(out);
        EVP_EncodeBlock((unsigned char *)out, data, (int)len);
        return out;
}

/* The bytes of b64 (malloc'ed, NUL-terminated), or NULL when it is not
 * base64. */
static char *unbase64(const char *b64)
{
        size_t len = strlen(b64);
        char *out = calloc(1, len + 1);
        if (!out)
                return NULL;
        int n =
            len ? EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)b64, (int)len) : 0;
        if (n < 0) {
                free(out);
                return NULL;
        }
        /* EVP_DecodeBlock counts the padding as bytes. */
        while (len > 0 && b64[len - 1] == '=' && n > 0)
                len--, n--;
        out[n] = '\0';
        return out;
}

static char *base64_file(const char *path)
{
        FILE *f = fopen(path, "re");
        ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
        char *data = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&data, &len);
        char buf[65536];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0)
                fwrite(buf, 1, n, mem);
        fclose(f);
        fclose(mem);
        char *out = base64(data, len);
        free(data);
        return out;
}

/* A POST to the first member that runs; fails the test on no answer. */
static json_object *post(struct h_etcd *e, const char *path, const char *body)
{
        for (int i = 0; i < H_ETCD_MEMBERS; i++) {
                if (e->pid[i] <= 0)
                        continue;
                char *out = NULL, *token = NULL;
                if (e->root_password[0]) {
                        char auth[256];
                        snprintf(auth, sizeof auth, "{\"name\":\"root\",\"password\":\"%s\"}",
                                 e->root_password);
                        if (request(e, e->client_port[i], "/v3/auth/authenticate", auth, NULL,
                                    &out) != 200) {
                                free(out);
                                continue;
                        }
                        json_object *o = json_tokener_parse(out);
                        free(out);
                        ck_assert_ptr_nonnull(h_json_str(o, "token"));
                        token = strdup(h_json_str(o, "token"));
                        json_object_put(o);
                }
                long status = request(e, e->client_port[i], path, body, token, &out);
                free(token);
                if (status == 0) {
                        free(out);
                        continue;
                }
                ck_assert_msg(status == 200, "etcd %s: HTTP %ld: %s", path, status, out ? out : "");
                json_object *o = json_tokener_parse(out);
                free(out);
                ck_assert_ptr_nonnull(o);
                return o;
        }
        ck_abort_msg("no etcd member answers %s", path);
        return NULL;
}

long long h_etcd_put_files(struct h_etcd *e, const char *key_a, const char *file_a,
                           const char *key_b, const char *file_b)
{
        char *ka = base64(key_a, strlen(key_a)), *va = base64_file(file_a);
        char *kb = key_b ? base64(key_b, strlen(key_b)) : NULL;
        char *vb = key_b ? base64_file(file_b) : NULL;
        char *body = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&body, &len);
        fprintf(f, "{\"success\":[{\"request_put\":{\"key\":\"%s\",\"value\":\"%s\"}}", ka, va);
        if (key_b)
                fprintf(f, ",{\"request_put\":{\"key\":\"%s\",\"value\":\"%s\"}}", kb, vb);
        fprintf(f, "]}");
        fclose(f);
        json_object *o = post(e, "/v3/kv/txn", body);
        long long rev = h_json_int(o, "header.revision");
        if (rev < 0) /* 64-bit numbers are strings */
                rev = atoll(h_json_str(o, "header.revision"));
        json_object_put(o);
        free(body);
        free(ka);
        free(va);
        free(kb);
        free(vb);
        return rev;
}

void h_etcd_compact(struct h_etcd *e, long long rev)
{
        char body[128];
        snprintf(body, sizeof body, "{\"revision\":\"%lld\",\"physical\":true}", rev);
        json_object_put(post(e, "/v3/kv/compaction", body));
}

char *h_etcd_get(struct h_etcd *e, const char *key)
{
        char *k = base64(key, strlen(key));
        char body[1024];
        snprintf(body, sizeof body, "{\"key\":\"%s\"}", k);
        free(k);
        /* Right after an election a member may answer "leader changed":
         * asked again (5 s at most), as etcd's own clients do. */
        json_object *o = NULL;
        for (int tries = 0; !o && tries < 50; tries++) {
                for (int i = 0; !o && i < H_ETCD_MEMBERS; i++) {
                        char *out = NULL;
                        if (e->pid[i] > 0 && !e->root_password[0] &&
                            request(e, e->client_port[i], "/v3/kv/range", body, NULL, &out) == 200)
                                o = json_tokener_parse(out);
                        free(out);
                }
                if (!o && e->root_password[0])
                        o = post(e, "/v3/kv/range", body);
                if (!o)
                        usleep(100 * 1000);
        }
        ck_assert_msg(o != NULL, "no etcd member answers a range of %s", key);
        json_object *kvs = h_json_path(o, "kvs");
        json_object *kv = kvs && json_object_is_type(kvs, json_type_array)
                              ? json_object_array_get_idx(kvs, 0)
                              : NULL;
        const char *v = kv ? h_json_str(kv, "value") : NULL;
        char *out = NULL;
        if (kv) {
                /* An empty value is left out of the answer. */
                out = unbase64(v ? v : "");
                ck_assert_msg(out != NULL, "the value of %s is not base64", key);
        }
        json_object_put(o);
        return out;
}

void h_etcd_dump(struct h_etcd *e, const char *prefix, FILE *out)
{
        char *key = base64(prefix, strlen(prefix));
        /* The prefix's range ends at the prefix with its last byte + 1. */
        char end_raw[256];
        snprintf(end_raw, sizeof end_raw, "%s", prefix);
        size_t n = strlen(end_raw);
        if (n > 0)
                end_raw[n - 1]++;
        char *end = base64(end_raw, n);
        char body[1024];
        snprintf(body, sizeof body, "{\"key\":\"%s\",\"range_end\":\"%s\",\"keys_only\":true}", key,
                 end);
        free(key);
        free(end);
        for (int i = 0; i < H_ETCD_MEMBERS; i++) {
                char *answer = NULL;
                if (e->pid[i] <= 0 || e->root_password[0] ||
                    request(e, e->client_port[i], "/v3/kv/range", body, NULL, &answer) != 200) {
                        free(answer);
                        continue;
                }
                json_object *o = json_tokener_parse(answer);
                free(answer);
                json_object *kvs = o ? h_json_path(o, "kvs") : NULL;
                fprintf(out, "etcd (member %d) at revision %s, keys under %s:\n", i,
                        o && h_json_str(o, "header.revision") ? h_json_str(o, "header.revision")
                                                              : "?",
                        prefix);
                size_t count = kvs && json_object_is_type(kvs, json_type_array)
                                   ? json_object_array_length(kvs)
                                   : 0;
                for (size_t k = 0; k < count; k++) {
                        json_object *kv = json_object_array_get_idx(kvs, k);
                        const char *k64 = h_json_str(kv, "key");
                        char *name = unbase64(k64 ? k64 : "");
                        const char *created = h_json_str(kv, "create_revision");
                        const char *modified = h_json_str(kv, "mod_revision");
                        const char *lease = h_json_str(kv, "lease");
                        fprintf(out, "  %s created %s modified %s lease %s\n", name ? name : "?",
                                created ? created : "?", modified ? modified : "?",
                                lease ? lease : "none");
                        free(name);
                }
                json_object_put(o);
                return;
        }
        fprintf(out, "etcd: no member answered a range of %s\n", prefix);
}
