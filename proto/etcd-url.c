/* etcd:// and etcds:// URLs; see etcd-url.h. */
#include "etcd-url.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void etcd_url_done(struct etcd_url *u)
{
        for (size_t i = 0; i < u->n_endpoints; i++)
                free(u->endpoints[i]);
        free(u->endpoints);
        free(u->prefix);
        *u = (struct etcd_url){0};
}

static bool valid_host_port(const char *s, size_t len)
{
        if (len == 0)
                return false;
        size_t i = 0;
        if (s[0] == '[') { /* an IPv6 literal */
                while (i < len && s[i] != ']')
                        i++;
                if (i == len || i == 1)
                        return false;
                for (size_t j = 1; j < i; j++)
                        if (!strchr("0123456789abcdefABCDEF:.", s[j]))
                                return false;
                i++;
        } else {
                while (i < len && s[i] != ':') {
                        if (!strchr(
                                "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-",
                                s[i]))
                                return false;
                        i++;
                }
                if (i == 0)
                        return false;
        }
        if (i == len)
                return true;
        if (s[i] != ':' || i + 1 == len || len - i - 1 > 5)
                return false;
        unsigned port = 0;
        for (size_t j = i + 1; j < len; j++) {
                if (s[j] < '0' || s[j] > '9')
                        return false;
                port = port * 10 + (unsigned)(s[j] - '0');
        }
        return port >= 1 && port <= 65535;
}

static bool has_port(const char *s, size_t len)
{
        const char *end = s + len;
        const char *p = s[0] == '[' ? memchr(s, ']', len) : s;
        return p && memchr(p, ':', (size_t)(end - p)) != NULL;
}

int etcd_url_parse(const char *url, struct etcd_url *ret, char **ret_error)
{
        struct etcd_url u = {0};
        const char *p;
        if (strncmp(url, "etcd://", 7) == 0)
                p = url + 7;
        else if (strncmp(url, "etcds://", 8) == 0)
                p = url + 8, u.tls = true;
        else {
                *ret_error = xasprintf("not an etcd:// or etcds:// URL");
                return -EINVAL;
        }
        const char *slash = strchr(p, '/');
        if (!slash || slash == p) {
                *ret_error = xasprintf("want etcd://HOST:PORT[,HOST:PORT…]/PREFIX");
                return -EINVAL;
        }
        const char *prefix = slash + 1;
        size_t plen = strlen(prefix);
        while (plen && prefix[plen - 1] == '/')
                plen--;
        if (plen == 0) {
                *ret_error = xasprintf("no key prefix after the hosts");
                return -EINVAL;
        }
        for (size_t i = 0; i < plen; i++) {
                unsigned char c = (unsigned char)prefix[i];
                /* A prefix is a key; these would make it ambiguous as a
                 * URL or in a log line. */
                if (c <= ' ' || c == 0x7f || c == '?' || c == '#' ||
                    (c == '/' && (i == 0 || prefix[i - 1] == '/'))) {
                        *ret_error = xasprintf("the key prefix '%.*s' holds an empty segment, a "
                                               "space, a control character, '?' or '#'",
                                               (int)plen, prefix);
                        return -EINVAL;
                }
        }
        u.prefix = strndup(prefix, plen);
        if (!u.prefix)
                abort();

        u.endpoints = xcalloc(ETCD_MAX_ENDPOINTS, sizeof *u.endpoints);
        for (const char *h = p; h < slash;) {
                const char *comma = memchr(h, ',', (size_t)(slash - h));
                const char *end = comma ? comma : slash;
                size_t len = (size_t)(end - h);
                if (!valid_host_port(h, len)) {
                        *ret_error = xasprintf("'%.*s' is not HOST or HOST:PORT", (int)len, h);
                        etcd_url_done(&u);
                        return -EINVAL;
                }
                if (u.n_endpoints == ETCD_MAX_ENDPOINTS) {
                        *ret_error = xasprintf("more than %d endpoints", ETCD_MAX_ENDPOINTS);
                        etcd_url_done(&u);
                        return -EINVAL;
                }
                u.endpoints[u.n_endpoints++] =
                    xasprintf("%s://%.*s%s", u.tls ? "https" : "http", (int)len, h,
                              has_port(h, len) ? "" : ":" ETCD_DEFAULT_PORT);
                h = comma ? comma + 1 : slash;
                if (comma && h == slash) {
                        *ret_error = xasprintf("an empty host after ','");
                        etcd_url_done(&u);
                        return -EINVAL;
                }
        }
        *ret = u;
        return 0;
}
