/* Shared helpers: durations, sizes, times and names as users write them,
 * and the strict UTF-8 check every string from outside goes through. */
#include <check.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sha256.h"
#include "util.h"

START_TEST(durations)
{
        uint64_t u;
        ck_assert_int_eq(parse_duration("250ms", &u), 0);
        ck_assert_uint_eq(u, 250 * USEC_PER_MSEC);
        ck_assert_int_eq(parse_duration("30s", &u), 0);
        ck_assert_uint_eq(u, 30 * USEC_PER_SEC);
        ck_assert_int_eq(parse_duration("5m", &u), 0);
        ck_assert_uint_eq(u, 300 * USEC_PER_SEC);
        ck_assert_int_eq(parse_duration("1h", &u), 0);
        ck_assert_uint_eq(u, 3600 * USEC_PER_SEC);
        ck_assert_int_eq(parse_duration("7", &u), 0);
        ck_assert_uint_eq(u, 7 * USEC_PER_SEC);
        const char *bad[] = {"", "s", "-1s", "1.5s", "1 s", "1sec", "10d", " 1s", "1s "};
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                ck_assert_msg(parse_duration(bad[i], &u) == -EINVAL, "accepted '%s'", bad[i]);
        ck_assert_int_eq(parse_duration("99999999999999999999s", &u), -ERANGE);
        ck_assert_int_eq(parse_duration("18446744073709551615h", &u), -ERANGE);

        char buf[32];
        format_duration(1500 * USEC_PER_MSEC, buf, sizeof buf);
        ck_assert_str_eq(buf, "1500ms");
        format_duration(30 * USEC_PER_SEC, buf, sizeof buf);
        ck_assert_str_eq(buf, "30s");
}
END_TEST

START_TEST(sizes)
{
        uint64_t b;
        ck_assert_int_eq(parse_size("256M", &b), 0);
        ck_assert_uint_eq(b, 256ULL << 20);
        ck_assert_int_eq(parse_size("4096", &b), 0);
        ck_assert_uint_eq(b, 4096);
        ck_assert_int_eq(parse_size("1G", &b), 0);
        ck_assert_uint_eq(b, 1ULL << 30);
        ck_assert_int_eq(parse_size("1X", &b), -EINVAL);
        ck_assert_int_eq(parse_size("M", &b), -EINVAL);
        ck_assert_int_eq(parse_size("99999999999T", &b), -ERANGE);
}
END_TEST

START_TEST(rfc3339)
{
        uint64_t u;
        ck_assert_int_eq(parse_rfc3339("2026-12-31T00:00:00Z", &u), 0);
        ck_assert_uint_eq(u / USEC_PER_SEC, 1798675200ULL);
        char buf[RFC3339_MAX];
        format_rfc3339(u, buf);
        ck_assert_str_eq(buf, "2026-12-31T00:00:00Z");
        uint64_t v;
        ck_assert_int_eq(parse_rfc3339("2026-12-31T02:00:00.123+02:00", &v), 0);
        ck_assert_uint_eq(v, u);
        ck_assert_int_eq(parse_rfc3339("2026-12-31", &v), -EINVAL);
        ck_assert_int_eq(parse_rfc3339("2026-12-31T00:00:00", &v), -EINVAL);
        ck_assert_int_eq(parse_rfc3339("2026-12-31T00:00:00Zjunk", &v), -EINVAL);
        ck_assert_int_eq(parse_rfc3339("2026-12-31T00:00:00+2:00", &v), -EINVAL);
}
END_TEST

struct named {
        int other;
        char *name;
};

START_TEST(sorted_by_name)
{
        struct named a = {.name = "alpha"}, m = {.name = "mid"}, z = {.name = "zulu"};
        void *v[] = {&a, &m, &z};
        const size_t off = offsetof(struct named, name);
        bool found;

        ck_assert_uint_eq(sorted_by_name_search(v, 3, off, "mid", &found), 1);
        ck_assert(found);
        ck_assert_uint_eq(sorted_by_name_search(v, 3, off, "zulu", &found), 2);
        ck_assert(found);
        /* Where a missing name belongs: before, between, after. */
        ck_assert_uint_eq(sorted_by_name_search(v, 3, off, "a", &found), 0);
        ck_assert(!found);
        ck_assert_uint_eq(sorted_by_name_search(v, 3, off, "beta", &found), 1);
        ck_assert(!found);
        ck_assert_uint_eq(sorted_by_name_search(v, 3, off, "zz", &found), 3);
        ck_assert(!found);
        ck_assert_uint_eq(sorted_by_name_search(v, 0, off, "any", &found), 0);
        ck_assert(!found);
}
END_TEST

/* Sorting and searching an array of strings, as the store's collection
 * and the keyring's file order do. */
START_TEST(string_arrays)
{
        const char *v[] = {"b", "ab", "a", "B"};
        qsort(v, ELEMENTSOF(v), sizeof *v, strptr_compare);
        ck_assert_str_eq(v[0], "B");
        ck_assert_str_eq(v[1], "a");
        ck_assert_str_eq(v[2], "ab");
        ck_assert_str_eq(v[3], "b");
        const char *key = "ab", *missing = "c";
        ck_assert_ptr_eq(bsearch(&key, v, ELEMENTSOF(v), sizeof *v, strptr_compare), &v[2]);
        ck_assert_ptr_null(bsearch(&missing, v, ELEMENTSOF(v), sizeof *v, strptr_compare));
}
END_TEST

START_TEST(service_names)
{
        ck_assert(service_name_is_valid("hello"));
        ck_assert(service_name_is_valid("a"));
        ck_assert(service_name_is_valid("web-2"));
        ck_assert(service_name_is_valid("0abc"));
        char longest[49];
        memset(longest, 'a', 48);
        longest[48] = '\0';
        ck_assert(service_name_is_valid(longest));
        char too_long[50];
        memset(too_long, 'a', 49);
        too_long[49] = '\0';
        ck_assert(!service_name_is_valid(too_long));
        const char *bad[] = {"", "-a", "Hello", "a_b", "a.b", "a/b", "a b", "é"};
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                ck_assert_msg(!service_name_is_valid(bad[i]), "accepted '%s'", bad[i]);
}
END_TEST

START_TEST(hex)
{
        const uint8_t in[] = {0x00, 0xab, 0xff};
        char out[7];
        hex_encode(in, 3, out);
        ck_assert_str_eq(out, "00abff");
        ck_assert(is_hex_string("00abff", 6));
        ck_assert(!is_hex_string("00ABFF", 6));
        ck_assert(!is_hex_string("00abf", 6));
        ck_assert(!is_hex_string("00abfg", 6));
        ck_assert_int_eq(unhex('0'), 0);
        ck_assert_int_eq(unhex('a'), 10);
        ck_assert_int_eq(unhex('F'), 15);
        ck_assert_int_eq(unhex('g'), -1);
        ck_assert_int_eq(unhex('\0'), -1);
}
END_TEST

/* The digests of FIPS 180-2's examples, as the store and the documents
 * name them. */
START_TEST(sha256)
{
        char out[SHA256_HEX_LEN + 1];
        ck_assert_int_eq(sha256_hex_of("abc", 3, out), 0);
        ck_assert_str_eq(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        ck_assert_int_eq(sha256_hex_of("", 0, out), 0);
        ck_assert_str_eq(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        /* Bytes, not a C string: a NUL in the middle counts. */
        ck_assert_int_eq(sha256_hex_of("a\0b", 3, out), 0);
        ck_assert_str_ne(out, "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb");
}
END_TEST

/* Strict UTF-8 (RFC 3629): the boundaries of each length are accepted, and
 * each way of getting it wrong is refused with its name and the offset of
 * the sequence at fault. */
static const char *const utf8_good[] = {
    "",
    "plain ASCII",
    "\x7f",             /* U+007F, the last 1-byte form */
    "\xc2\x80",         /* U+0080, the first 2-byte form */
    "\xdf\xbf",         /* U+07FF */
    "\xe0\xa0\x80",     /* U+0800, the first 3-byte form */
    "\xed\x9f\xbf",     /* U+D7FF, just below the surrogates */
    "\xee\x80\x80",     /* U+E000, just above them */
    "\xef\xbb\xbf",     /* U+FEFF, the byte-order mark, is a character like any */
    "\xef\xbf\xbf",     /* U+FFFF */
    "\xf0\x90\x80\x80", /* U+10000, the first 4-byte form */
    "\xf4\x8f\xbf\xbf", /* U+10FFFF, the last code point */
    "na\xc3\xafve \xe2\x82\xac \xf0\x9f\x98\x80",
};

START_TEST(utf8_valid)
{
        const char *s = utf8_good[_i];
        size_t off = 99;
        const char *why = NULL;
        ck_assert_msg(utf8_check(s, strlen(s), &off, &why) == 0, "refused #%d: %s", _i, why);
        ck_assert_uint_eq(off, 99);
        ck_assert_ptr_null(why);
}
END_TEST

static const struct {
        const char *s;
        size_t offset;
        const char *reason;
} utf8_bad[] = {
    {"\xc0\xaf", 0, "overlong encoding"}, /* '/' in two bytes */
    {"\xc1\xbf", 0, "overlong encoding"},
    {"ab\xe0\x80\xaf", 2, "overlong encoding"},           /* three bytes */
    {"\xe0\x9f\xbf", 0, "overlong encoding"},             /* U+07FF in three */
    {"\xf0\x80\x80\xaf", 0, "overlong encoding"},         /* four bytes */
    {"\xf0\x8f\xbf\xbf", 0, "overlong encoding"},         /* U+FFFF in four */
    {"\xed\xa0\x80", 0, "encoded surrogate"},             /* U+D800 */
    {"x\xed\xbf\xbf", 1, "encoded surrogate"},            /* U+DFFF */
    {"\xed\xa0\xbd\xed\xb2\xa9", 0, "encoded surrogate"}, /* a pair, CESU-8 style */
    {"\xf4\x90\x80\x80", 0, "code point above U+10FFFF"}, /* U+110000 */
    {"\xf5\x80\x80\x80", 0, "code point above U+10FFFF"},
    {"\xf7\xbf\xbf\xbf", 0, "code point above U+10FFFF"},
    {"\xf8\x88\x80\x80\x80", 0, "invalid lead byte"},     /* the old 5-byte form */
    {"\xfc\x84\x80\x80\x80\x80", 0, "invalid lead byte"}, /* and 6-byte */
    {"ok\xfe", 2, "invalid lead byte"},
    {"\xff", 0, "invalid lead byte"},
    {"ab\xc3", 2, "truncated sequence"},
    {"\xe2\x82", 0, "truncated sequence"},
    {"\xc3\xa9\xf0\x9f\x98", 2, "truncated sequence"},
    {"a\x80", 1, "stray continuation byte"},
    {"\xbf", 0, "stray continuation byte"},
    {"\xc3\xa9\xa9", 2, "stray continuation byte"},
    {"\xc3(", 0, "bad continuation byte"},
    {"\xe2(\xa1", 0, "bad continuation byte"},
    {"\xe2\x82(", 0, "bad continuation byte"},
    {"\xf0\x9f\x98\xc3\xa9", 0, "bad continuation byte"},
};

START_TEST(utf8_invalid)
{
        const char *s = utf8_bad[_i].s;
        size_t off = 99;
        const char *why = NULL;
        ck_assert_int_eq(utf8_check(s, strlen(s), &off, &why), -EILSEQ);
        ck_assert_uint_eq(off, utf8_bad[_i].offset);
        ck_assert_str_eq(why, utf8_bad[_i].reason);
        /* The same fault one byte further on, after a 2-byte character. */
        char *later = xasprintf("\xc3\xa9%s", s);
        ck_assert_int_eq(utf8_check(later, strlen(later), &off, &why), -EILSEQ);
        ck_assert_uint_eq(off, utf8_bad[_i].offset + 2);
        free(later);
}
END_TEST

START_TEST(utf8_length_is_honoured)
{
        /* The length bounds the check, in both directions: a NUL is a
         * character, and a sequence cut by the length is truncated. */
        ck_assert_int_eq(utf8_check("a\0b", 3, NULL, NULL), 0);
        ck_assert_int_eq(utf8_check("\xc3\xa9", 1, NULL, NULL), -EILSEQ);
        ck_assert_int_eq(utf8_check("\xc0\xaf", 0, NULL, NULL), 0);
}
END_TEST

START_TEST(utf8_cut_keeps_characters_whole)
{
        /* "aé€😀": 1, 2, 3 and 4 bytes. */
        const char *s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
        static const size_t want[] = {0, 1, 1, 3, 3, 3, 6, 6, 6, 6, 10, 10, 10};
        for (size_t max = 0; max < ELEMENTSOF(want); max++) {
                size_t len = utf8_cut(s, max);
                ck_assert_msg(len == want[max], "max %zu: %zu", max, len);
                ck_assert_int_eq(utf8_check(s, len, NULL, NULL), 0);
        }
        ck_assert_uint_eq(utf8_cut("", 0), 0);
        ck_assert_uint_eq(utf8_cut("abc", 2), 2);
}
END_TEST

START_TEST(utf8_escaping)
{
        static const char *const cases[][2] = {
            {"", ""},
            {"na\xc3\xafve \xf0\x9f\x98\x80", "na\xc3\xafve \xf0\x9f\x98\x80"},
            {"a\xc0\xafz", "a\\xc0\\xafz"},
            {"\xed\xa0\x80", "\\xed\\xa0\\x80"},
            {"cut \xe2\x82", "cut \\xe2\\x82"},
            {"\xff\xc3\xa9\x80", "\\xff\xc3\xa9\\x80"},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char *out = utf8_escape_invalid(cases[i][0]);
                ck_assert_str_eq(out, cases[i][1]);
                ck_assert_int_eq(utf8_check(out, strlen(out), NULL, NULL), 0);
                free(out);
        }
}
END_TEST

static char *write_temp_file(const char *content, size_t len)
{
        char *path = xasprintf("%s/test-util.XXXXXX", LII_BUILD_DIR);
        int fd = mkostemp(path, O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write_all(fd, content, len), 0);
        close(fd);
        return path;
}

/* A small file read under a large cap costs memory for its size, not for
 * the cap (a state file's cap is 64 MiB); the cap holds to the byte. */
START_TEST(read_small_file_under_large_cap)
{
        _cleanup_free_ char *path = write_temp_file("hello\n", 6);
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        ck_assert_int_eq(read_file_capped(path, (size_t)64 << 20, &text, &len), 0);
        ck_assert_uint_eq(len, 6);
        ck_assert_str_eq(text, "hello\n");
        ck_assert_uint_lt(malloc_usable_size(text), 4096);
        free(TAKE_PTR(text));

        ck_assert_int_eq(read_file_capped(path, 6, &text, &len), 0);
        ck_assert_str_eq(text, "hello\n");
        free(TAKE_PTR(text));
        ck_assert_int_eq(read_file_capped(path, 5, &text, &len), -EFBIG);
        ck_assert_ptr_null(text);
        unlink(path);

        _cleanup_free_ char *empty = write_temp_file("", 0);
        ck_assert_int_eq(read_file_capped(empty, 0, &text, &len), 0);
        ck_assert_uint_eq(len, 0);
        ck_assert_str_eq(text, "");
        free(TAKE_PTR(text));
        unlink(empty);
}
END_TEST

/* A file longer than fstat() says (a file of /proc says 0, as does one
 * that grows while it is read) is still read whole, up to the cap. */
START_TEST(read_file_longer_than_its_size)
{
        const char *path = "/proc/self/status";
        struct stat st;
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_int_eq(st.st_size, 0);

        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        ck_assert_int_eq(read_file_capped(path, 1 << 20, &text, &len), 0);
        ck_assert_uint_gt(len, 100);
        ck_assert_uint_eq(strlen(text), len);
        ck_assert_int_eq(strncmp(text, "Name:", 5), 0);
        ck_assert_str_eq(text + len - 1, "\n");
        free(TAKE_PTR(text));

        ck_assert_int_eq(read_file_capped(path, 100, &text, &len), -EFBIG);
        ck_assert_ptr_null(text);
}
END_TEST

/* Untrusted names in messages: one line of plain ASCII, whose escapes
 * cannot be mistaken for the name's own text, cut short after max bytes. */
START_TEST(untrusted_escaping)
{
        static const struct {
                const char *s;
                size_t max;
                const char *want;
        } cases[] = {
            {"", 8, ""},
            {"plain-name_1.txt", 64, "plain-name_1.txt"},
            {"../x\n\x1b[2J", 64, "../x\\x0a\\x1b[2J"},
            {"tab\there\x7f", 64, "tab\\x09here\\x7f"},
            {"caf\xc3\xa9", 64, "caf\\xc3\\xa9"},
            {"a\\x41", 64, "a\\x5cx41"},
            {"it's \"x\"", 64, "it\\x27s \\x22x\\x22"},
            {"abcdef", 6, "abcdef"},
            {"abcdefg", 6, "abcdef..."},
            {"\x01\x02\x03", 2, "\\x01\\x02..."},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *out = escape_untrusted(cases[i].s, cases[i].max);
                ck_assert_str_eq(out, cases[i].want);
        }
}
END_TEST

/* JSON strings as written between their quotes: their escapes count too. */
static const struct {
        const char *s;
        const char *error; /* NULL: accepted */
} json_strings[] = {
    {"\\u00e9\\uFFFF\\ufeff\\u007f", NULL},
    {"\\ud83d\\ude00", NULL}, /* a surrogate pair, in either case */
    {"\\uD83D\\uDE00", NULL},
    {"\\\\ud800\\\\u0000", NULL}, /* escaped backslashes, then plain text */
    {"\\\"\\ud800", "not valid UTF-8 (unpaired surrogate \\ud800 at byte 2)"},
    {"\\ud800", "not valid UTF-8 (unpaired surrogate \\ud800 at byte 0)"},
    {"\\udbff", "not valid UTF-8 (unpaired surrogate \\udbff at byte 0)"},
    {"x\\udc00", "not valid UTF-8 (unpaired surrogate \\udc00 at byte 1)"},
    {"\\ud800x", "not valid UTF-8 (unpaired surrogate \\ud800 at byte 0)"},
    {"\\ud800\\u0041", "not valid UTF-8 (unpaired surrogate \\ud800 at byte 0)"},
    {"\\ud800\\ud800", "not valid UTF-8 (unpaired surrogate \\ud800 at byte 0)"},
    {"\\ude00\\ud83d", "not valid UTF-8 (unpaired surrogate \\ude00 at byte 0)"},
    {"ab\\u0000", "contains a NUL character (\\u0000 at byte 2)"},
    {"h\xc3\xa9\xc0\xaf", "not valid UTF-8 (overlong encoding at byte 3)"},
};

START_TEST(json_string_escapes)
{
        const char *s = json_strings[_i].s;
        char *error = NULL;
        int r = json_string_check(s, strlen(s), 0, &error);
        if (!json_strings[_i].error) {
                ck_assert_msg(r == 0, "refused \"%s\": %s", s, error);
                ck_assert_ptr_null(error);
        } else {
                ck_assert_int_eq(r, -EILSEQ);
                ck_assert_str_eq(error, json_strings[_i].error);
                free(error);
        }
}
END_TEST

START_TEST(json_string_nul_and_base)
{
        char *error = NULL;
        ck_assert_int_eq(json_string_check("a\0b", 3, 0, &error), -EILSEQ);
        ck_assert_str_eq(error, "contains a NUL character (at byte 1)");
        free(error);
        error = NULL;
        ck_assert_int_eq(json_string_check("a\xed\xa0\x80", 4, 40, &error), -EILSEQ);
        ck_assert_str_eq(error, "not valid UTF-8 (encoded surrogate at byte 41)");
        free(error);
        ck_assert_int_eq(json_string_check("\\ud800", 6, 0, NULL), -EILSEQ);
}
END_TEST

START_TEST(json_text_strings)
{
        char *error = NULL;
        const char *ok = "{\"a\\\"\":\"\\\\\",\"b\":[\"\xc3\xa9\",\"\\ud83d\\ude00\"]}";
        ck_assert_int_eq(json_text_check_strings(ok, strlen(ok), &error), 0);
        ck_assert_ptr_null(error);

        /* Offsets count from the start of the text. */
        const char *raw = "{\"a\":\"ok\",\"b\":\"x\xed\xa0\x80\"}";
        ck_assert_int_eq(json_text_check_strings(raw, strlen(raw), &error), -EILSEQ);
        ck_assert_str_eq(error, "not valid UTF-8 (encoded surrogate at byte 16)");
        free(error);
        error = NULL;

        /* A key counts, and an escaped quote does not end a string. */
        const char *key = "{\"\\\"\\ud800\":1}";
        ck_assert_int_eq(json_text_check_strings(key, strlen(key), &error), -EILSEQ);
        ck_assert_str_eq(error, "not valid UTF-8 (unpaired surrogate \\ud800 at byte 4)");
        free(error);
        error = NULL;

        /* An escaped backslash ends where it ends: the next string is read
         * as a string. */
        const char *nul = "[\"\\\\\",\"\\u0000\"]";
        ck_assert_int_eq(json_text_check_strings(nul, strlen(nul), &error), -EILSEQ);
        ck_assert_str_eq(error, "contains a NUL character (\\u0000 at byte 7)");
        free(error);
        error = NULL;

        /* An unterminated string is checked to the end of the text. */
        const char *cut = "[\"\xe2\x82";
        ck_assert_int_eq(json_text_check_strings(cut, strlen(cut), &error), -EILSEQ);
        ck_assert_str_eq(error, "not valid UTF-8 (truncated sequence at byte 2)");
        free(error);
}
END_TEST

START_TEST(base64_round_trip_and_strictness)
{
        const char data[] = "a\0bc\xff\x01";
        for (size_t len = 0; len <= sizeof data; len++) {
                _cleanup_free_ char *b64 = base64_encode(data, len);
                ck_assert_uint_eq(strlen(b64) % 4, 0);
                _cleanup_free_ uint8_t *out = NULL;
                size_t out_len, at;
                const char *why;
                ck_assert_int_eq(base64_decode(b64, strlen(b64), &out, &out_len, &why, &at), 0);
                ck_assert_uint_eq(out_len, len);
                ck_assert(memcmp(out, data, len) == 0);
        }
        _cleanup_free_ char *key = base64_encode("lii/prod/desired/doc", 20);
        ck_assert_str_eq(key, "bGlpL3Byb2QvZGVzaXJlZC9kb2M=");

        const struct {
                const char *text;
                const char *why;
                size_t at;
        } bad[] = {
            {"aGk", "length is not a multiple of 4", SIZE_MAX},
            {"a$k=", "a character is not in the base64 alphabet", 1},
            {"aG k", "a character is not in the base64 alphabet", 2},
            {"a===", "too much padding", SIZE_MAX},
            /* "aGk=" is "hi"; "aGl=" differs only in bits padding drops. */
            {"aGl=", "non-canonical encoding (unused bits are not zero)", SIZE_MAX},
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                uint8_t *out = NULL;
                size_t out_len, at;
                const char *why = NULL;
                ck_assert_int_eq(
                    base64_decode(bad[i].text, strlen(bad[i].text), &out, &out_len, &why, &at),
                    -EBADMSG);
                ck_assert_str_eq(why, bad[i].why);
                ck_assert_uint_eq(at, bad[i].at);
                ck_assert_ptr_null(out);
        }
}
END_TEST

int main(void)
{
        Suite *s = suite_create("util");
        TCase *tc = tcase_create("util");
        tcase_add_test(tc, durations);
        tcase_add_test(tc, sizes);
        tcase_add_test(tc, rfc3339);
        tcase_add_test(tc, service_names);
        tcase_add_test(tc, hex);
        tcase_add_test(tc, sha256);
        tcase_add_test(tc, sorted_by_name);
        tcase_add_test(tc, string_arrays);
        tcase_add_loop_test(tc, utf8_valid, 0, ELEMENTSOF(utf8_good));
        tcase_add_loop_test(tc, utf8_invalid, 0, ELEMENTSOF(utf8_bad));
        tcase_add_test(tc, utf8_cut_keeps_characters_whole);
        tcase_add_test(tc, utf8_length_is_honoured);
        tcase_add_test(tc, utf8_escaping);
        tcase_add_test(tc, untrusted_escaping);
        tcase_add_test(tc, read_small_file_under_large_cap);
        tcase_add_test(tc, read_file_longer_than_its_size);
        tcase_add_loop_test(tc, json_string_escapes, 0, ELEMENTSOF(json_strings));
        tcase_add_test(tc, json_string_nul_and_base);
        tcase_add_test(tc, json_text_strings);
        tcase_add_test(tc, base64_round_trip_and_strictness);
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
