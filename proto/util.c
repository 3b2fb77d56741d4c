/* Pure helpers shared by liid and liictl; see util.h. */
#include "util.h"

#include <ctype.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "lii-proto.h"

char **strv_free(char **v)
{
        if (!v)
                return NULL;
        for (char **p = v; *p; p++)
                free(*p);
        free(v);
        return NULL;
}

size_t sorted_by_name_search(void *const *v, size_t n, size_t name_offset, const char *name,
                             bool *ret_found)
{
        size_t lo = 0, hi = n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                const char *mid_name = *(char *const *)((const char *)v[mid] + name_offset);
                int c = strcmp(name, mid_name);
                if (c == 0) {
                        *ret_found = true;
                        return mid;
                }
                if (c < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        *ret_found = false;
        return lo;
}

bool strv_contains(const char *const *v, const char *s)
{
        for (; v && *v; v++)
                if (strcmp(*v, s) == 0)
                        return true;
        return false;
}

size_t strv_length(char *const *v)
{
        size_t n = 0;
        while (v && v[n])
                n++;
        return n;
}

int strptr_compare(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

struct unit_scale {
        const char *suffix;
        uint64_t factor;
};

static int parse_scaled(const char *s, const struct unit_scale *units, size_t n_units,
                        uint64_t default_factor, uint64_t *ret)
{
        if (!s || !isdigit((unsigned char)*s))
                return -EINVAL;
        errno = 0;
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        uint64_t factor = 0;
        if (*end == '\0')
                factor = default_factor;
        for (size_t i = 0; i < n_units && factor == 0; i++)
                if (strcmp(end, units[i].suffix) == 0)
                        factor = units[i].factor;
        if (factor == 0)
                return -EINVAL;
        if (v > UINT64_MAX / factor)
                return -ERANGE;
        *ret = (uint64_t)v * factor;
        return 0;
}

int parse_duration(const char *s, uint64_t *ret_usec)
{
        static const struct unit_scale units[] = {
            {"ms", USEC_PER_MSEC},
            {"s", USEC_PER_SEC},
            {"m", 60 * USEC_PER_SEC},
            {"h", 3600 * USEC_PER_SEC},
        };
        return parse_scaled(s, units, ELEMENTSOF(units), USEC_PER_SEC, ret_usec);
}

int parse_size(const char *s, uint64_t *ret_bytes)
{
        static const struct unit_scale units[] = {
            {"K", 1ULL << 10},
            {"M", 1ULL << 20},
            {"G", 1ULL << 30},
            {"T", 1ULL << 40},
        };
        return parse_scaled(s, units, ELEMENTSOF(units), 1, ret_bytes);
}

void format_duration(uint64_t usec, char *buf, size_t size)
{
        if (usec % USEC_PER_SEC == 0)
                snprintf(buf, size, "%" PRIu64 "s", usec / (uint64_t)USEC_PER_SEC);
        else if (usec % USEC_PER_MSEC == 0 && usec < 10 * USEC_PER_SEC)
                snprintf(buf, size, "%" PRIu64 "ms", usec / (uint64_t)USEC_PER_MSEC);
        else
                snprintf(buf, size, "%.1fs", (double)usec / USEC_PER_SEC);
}

static uint64_t clock_usec(clockid_t id)
{
        struct timespec ts;
        clock_gettime(id, &ts);
        return (uint64_t)ts.tv_sec * USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t now_realtime_usec(void)
{
        return clock_usec(CLOCK_REALTIME);
}

uint64_t now_monotonic_usec(void)
{
        return clock_usec(CLOCK_MONOTONIC);
}

void format_rfc3339(uint64_t usec, char buf[static RFC3339_MAX])
{
        time_t t = (time_t)(usec / USEC_PER_SEC);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(buf, RFC3339_MAX, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int parse_rfc3339(const char *s, uint64_t *ret_usec)
{
        struct tm tm = {0};
        const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
        if (!p)
                return -EINVAL;
        if (*p == '.') {
                p++;
                if (!isdigit((unsigned char)*p))
                        return -EINVAL;
                while (isdigit((unsigned char)*p))
                        p++;
        }
        long offset = 0;
        if (*p == 'Z' || *p == 'z') {
                p++;
        } else if (*p == '+' || *p == '-') {
                int sign = *p == '-' ? -1 : 1;
                if (!isdigit((unsigned char)p[1]) || !isdigit((unsigned char)p[2]) || p[3] != ':' ||
                    !isdigit((unsigned char)p[4]) || !isdigit((unsigned char)p[5]))
                        return -EINVAL;
                int hh = (p[1] - '0') * 10 + (p[2] - '0');
                int mm = (p[4] - '0') * 10 + (p[5] - '0');
                if (hh > 23 || mm > 59)
                        return -EINVAL;
                offset = sign * (hh * 3600L + mm * 60L);
                p += 6;
        } else {
                return -EINVAL;
        }
        if (*p != '\0')
                return -EINVAL;
        time_t t = timegm(&tm);
        if (t == (time_t)-1 || t < 0)
                return -ERANGE;
        t -= offset;
        if (t < 0)
                return -ERANGE;
        *ret_usec = (uint64_t)t * USEC_PER_SEC;
        return 0;
}

void hex_encode(const uint8_t *in, size_t n, char *out)
{
        static const char digits[] = "0123456789abcdef";
        for (size_t i = 0; i < n; i++) {
                out[2 * i] = digits[in[i] >> 4];
                out[2 * i + 1] = digits[in[i] & 15];
        }
        out[2 * n] = '\0';
}

int unhex(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

bool is_hex_string(const char *s, size_t len)
{
        if (!s || strlen(s) != len)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!isdigit((unsigned char)s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
                        return false;
        return true;
}

size_t utf8_cut(const char *s, size_t max)
{
        size_t len = strnlen(s, max + 1);
        if (len <= max)
                return len;
        /* s[max] is the first byte left out: while it continues a
         * character, that character starts before the cut. */
        len = max;
        while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
                len--;
        return len;
}

int utf8_check(const char *s, size_t len, size_t *ret_offset, const char **ret_reason)
{
        const unsigned char *p = (const unsigned char *)s;

        for (size_t i = 0; i < len;) {
                const char *why = NULL;
                size_t n = 1;
                uint32_t cp = p[i], min = 0;

                if (p[i] < 0x80) {
                        i++;
                        continue;
                } else if (p[i] < 0xc0) {
                        why = "stray continuation byte";
                } else if (p[i] < 0xe0) {
                        n = 2;
                        cp &= 0x1f;
                        min = 0x80;
                } else if (p[i] < 0xf0) {
                        n = 3;
                        cp &= 0x0f;
                        min = 0x800;
                } else if (p[i] < 0xf8) {
                        n = 4;
                        cp &= 0x07;
                        min = 0x10000;
                } else {
                        /* The leads of the 5- and 6-byte forms RFC 3629
                         * withdrew, and 0xfe and 0xff, which never occur. */
                        why = "invalid lead byte";
                }
                for (size_t k = 1; !why && k < n; k++) {
                        if (i + k >= len)
                                why = "truncated sequence";
                        else if ((p[i + k] & 0xc0) != 0x80)
                                why = "bad continuation byte";
                        else
                                cp = cp << 6 | (p[i + k] & 0x3f);
                }
                if (!why && cp < min)
                        why = "overlong encoding";
                else if (!why && cp >= 0xd800 && cp <= 0xdfff)
                        why = "encoded surrogate";
                else if (!why && cp > 0x10ffff)
                        why = "code point above U+10FFFF";
                if (why) {
                        if (ret_offset)
                                *ret_offset = i;
                        if (ret_reason)
                                *ret_reason = why;
                        return -EILSEQ;
                }
                i += n;
        }
        return 0;
}

char *utf8_escape_invalid(const char *s)
{
        size_t len = strlen(s), off;

        if (utf8_check(s, len, NULL, NULL) == 0)
                return xstrdup(s);
        char *out = xcalloc(len * 4 + 1, 1), *p = out;
        while (utf8_check(s, len, &off, NULL) < 0) {
                memcpy(p, s, off);
                p += off;
                p += sprintf(p, "\\x%02x", (unsigned char)s[off]);
                s += off + 1;
                len -= off + 1;
        }
        memcpy(p, s, len);
        return out;
}

char *escape_untrusted(const char *s, size_t max)
{
        size_t len = strnlen(s, max), n = 0;
        char *out = xcalloc(len * 4 + sizeof("..."), 1);

        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c < 0x20 || c >= 0x7f || c == '\\' || c == '\'' || c == '"')
                        n += (size_t)sprintf(out + n, "\\x%02x", c);
                else
                        out[n++] = (char)c;
        }
        if (s[len] != '\0')
                strcpy(out + n, "...");
        return out;
}

/* The value of the four hex digits at s, or -1 when they are not that. */
static int32_t hex4(const char *s, size_t len)
{
        int32_t v = 0;

        if (len < 4)
                return -1;
        for (size_t i = 0; i < 4; i++) {
                int d = unhex(s[i]);
                if (d < 0)
                        return -1;
                v = v << 4 | d;
        }
        return v;
}

int json_string_check(const char *s, size_t len, size_t base, char **ret_error)
{
        size_t off;
        const char *why;

        if (utf8_check(s, len, &off, &why) < 0)
                return fail_with(ret_error, -EILSEQ, "not valid UTF-8 (%s at byte %zu)", why,
                                 base + off);
        for (size_t i = 0; i < len; i++) {
                if (s[i] == '\0')
                        return fail_with(ret_error, -EILSEQ,
                                         "contains a NUL character (at byte %zu)", base + i);
                if (s[i] != '\\' || i + 1 >= len)
                        continue;
                size_t esc = i++;
                if (s[i] != 'u')
                        continue;
                int32_t u = hex4(s + i + 1, len - i - 1);
                if (u < 0)
                        continue;
                i += 4;
                if (u == 0)
                        return fail_with(ret_error, -EILSEQ,
                                         "contains a NUL character (\\u0000 at byte %zu)",
                                         base + esc);
                if (u >= 0xdc00 && u <= 0xdfff)
                        return fail_with(ret_error, -EILSEQ,
                                         "not valid UTF-8 (unpaired surrogate \\u%04x at byte %zu)",
                                         (unsigned)u, base + esc);
                if (u < 0xd800 || u > 0xdbff)
                        continue;
                int32_t low = i + 2 < len && s[i + 1] == '\\' && s[i + 2] == 'u'
                                  ? hex4(s + i + 3, len - i - 3)
                                  : -1;
                if (low < 0xdc00 || low > 0xdfff)
                        return fail_with(ret_error, -EILSEQ,
                                         "not valid UTF-8 (unpaired surrogate \\u%04x at byte %zu)",
                                         (unsigned)u, base + esc);
                i += 6;
        }
        return 0;
}

int json_text_check_strings(const char *buf, size_t len, char **ret_error)
{
        for (size_t i = 0; i < len; i++) {
                if (buf[i] != '"')
                        continue;
                size_t start = ++i;
                while (i < len && buf[i] != '"')
                        i += buf[i] == '\\' ? 2 : 1;
                if (i > len)
                        i = len;
                int r = json_string_check(buf + start, i - start, start, ret_error);
                if (r < 0)
                        return r;
        }
        return 0;
}

bool service_name_is_valid(const char *s)
{
        size_t n = s ? strlen(s) : 0;
        if (n < 1 || n > LII_SERVICE_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && i > 0);
                if (!ok)
                        return false;
        }
        return true;
}

static void oom(void);

int read_file_capped(const char *path, size_t max, char **ret, size_t *ret_len)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        /* Reading stops one byte past max, which is how a file over the cap
         * shows. The buffer starts at the size fstat() saw plus that byte,
         * so that a file read whole ends in one read() and the end-of-file
         * in the next, and grows only when the file turns out longer (it
         * grew meanwhile, or, as in /proc, its size says nothing). */
        size_t want = max + 1;
        size_t size = (uint64_t)st.st_size < max ? (size_t)st.st_size + 1 : want;
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        for (;;) {
                if (!buf || (len == size && size < want)) {
                        if (buf)
                                size = size > want / 2 ? want : size * 2;
                        char *bigger = realloc(buf, size + 1);
                        if (!bigger)
                                oom();
                        buf = bigger;
                }
                ssize_t n = read(fd, buf + len, size - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t)n;
                if (len > max)
                        return -EFBIG;
        }
        buf[len] = '\0';
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

int write_all(int fd, const void *buf, size_t len)
{
        for (const char *p = buf; len > 0;) {
                ssize_t n = write(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

int fsync_dir(const char *path)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) < 0)
                return -errno;
        return 0;
}

const char *read_file_strerror(int r)
{
        return r == -EBADFD ? "not a regular file" : strerror(-r);
}

static void oom(void)
{
        fputs("out of memory\n", stderr);
        abort();
}

char *xstrdup(const char *s)
{
        char *r = strdup(s);
        if (!r)
                oom();
        return r;
}

void *oom_check(void *p)
{
        if (!p)
                oom();
        return p;
}

void *xcalloc(size_t n, size_t size)
{
        void *r = calloc(n ? n : 1, size ? size : 1);
        if (!r)
                oom();
        return r;
}

void *xrealloc(void *p, size_t size)
{
        void *r = realloc(p, size ? size : 1);
        if (!r)
                oom();
        return r;
}

int fail_with(char **ret_error, int r, const char *fmt, ...)
{
        if (ret_error) {
                va_list ap;
                va_start(ap, fmt);
                if (vasprintf(ret_error, fmt, ap) < 0)
                        abort();
                va_end(ap);
        }
        return r;
}

char *xasprintf(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        char *r;
        int n = vasprintf(&r, fmt, ap);
        va_end(ap);
        if (n < 0)
                oom();
        return r;
}

static const char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *base64_encode(const void *data, size_t len)
{
        const uint8_t *d = data;
        char *out = xcalloc(1, (len + 2) / 3 * 4 + 1), *o = out;
        for (size_t i = 0; i < len; i += 3) {
                uint32_t v = (uint32_t)d[i] << 16;
                if (i + 1 < len)
                        v |= (uint32_t)d[i + 1] << 8;
                if (i + 2 < len)
                        v |= d[i + 2];
                *o++ = base64_alphabet[(v >> 18) & 63];
                *o++ = base64_alphabet[(v >> 12) & 63];
                *o++ = i + 1 < len ? base64_alphabet[(v >> 6) & 63] : '=';
                *o++ = i + 2 < len ? base64_alphabet[v & 63] : '=';
        }
        return out;
}

static int base64_value(unsigned char c)
{
        const char *p = c ? strchr(base64_alphabet, c) : NULL;
        return p ? (int)(p - base64_alphabet) : -1;
}

int base64_decode(const char *s, size_t len, uint8_t **ret, size_t *ret_len,
                  const char **ret_reason, size_t *ret_at)
{
        *ret_at = SIZE_MAX;
        if (len % 4 != 0) {
                *ret_reason = "length is not a multiple of 4";
                return -EBADMSG;
        }
        size_t pad = 0;
        while (pad < len && s[len - 1 - pad] == '=')
                pad++;
        if (pad > 2) {
                *ret_reason = "too much padding";
                return -EBADMSG;
        }
        _cleanup_free_ uint8_t *out = xcalloc(1, len / 4 * 3 + 1);
        size_t n = 0;
        uint32_t acc = 0;
        unsigned bits = 0;
        for (size_t i = 0; i < len - pad; i++) {
                int v = base64_value((unsigned char)s[i]);
                if (v < 0) {
                        *ret_reason = "a character is not in the base64 alphabet";
                        *ret_at = i;
                        return -EBADMSG;
                }
                acc = (acc << 6) | (uint32_t)v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[n++] = (uint8_t)(acc >> bits);
                        acc &= (1u << bits) - 1;
                }
        }
        if (acc != 0) {
                *ret_reason = "non-canonical encoding (unused bits are not zero)";
                return -EBADMSG;
        }
        *ret = TAKE_PTR(out);
        *ret_len = n;
        return 0;
}
