/* The _cleanup_ attribute and every adapter it needs for a type lii does
 * not define: memory, descriptors and FILE and DIR streams from libc, and
 * the objects of json-c, OpenSSL, libcurl, libarchive and libmicrohttpd.
 * sd-bus brings its own (sd_bus_message_unrefp()…); lii's own types keep
 * theirs beside their free function (desired_freep() in desired.h). Each
 * adapter takes the address of the variable and accepts one that holds
 * NULL (or -1 for a descriptor). util.h includes this header.
 *
 * liictl's files build with LII_CLEANUP_CLIENT and get the libc and json-c
 * adapters only: liictl links none of the daemon's other libraries, and so
 * needs neither their headers nor their adapters. */
#pragma once

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))

/* Transfers ownership out of a _cleanup_ variable. */
#define TAKE_PTR(p)                                                                                \
        ({                                                                                         \
                __typeof__(p) _p = (p);                                                            \
                (p) = NULL;                                                                        \
                _p;                                                                                \
        })
#define TAKE_FD(fd)                                                                                \
        ({                                                                                         \
                int _fd = (fd);                                                                    \
                (fd) = -1;                                                                         \
                _fd;                                                                               \
        })

/* libc */

static inline void freep(void *p)
{
        free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd)
{
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f)
{
        if (*f)
                fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

static inline void closedirp(DIR **d)
{
        if (*d)
                closedir(*d);
}

/* json-c: liid and liictl both parse with it. */

#include <json-c/json.h>

static inline void json_object_putp(json_object **o)
{
        json_object_put(*o);
}
#define _cleanup_json_ _cleanup_(json_object_putp)

#ifndef LII_CLEANUP_CLIENT

static inline void json_tokener_freep(struct json_tokener **t)
{
        if (*t)
                json_tokener_free(*t);
}

/* OpenSSL */

#include <openssl/evp.h>

static inline void evp_md_unrefp(EVP_MD **p)
{
        EVP_MD_free(*p);
}

static inline void evp_md_ctx_unrefp(EVP_MD_CTX **p)
{
        EVP_MD_CTX_free(*p);
}

static inline void evp_pkey_unrefp(EVP_PKEY **p)
{
        EVP_PKEY_free(*p);
}

/* libcurl */

#include <curl/curl.h>

static inline void curl_freep(char **p)
{
        curl_free(*p);
}

static inline void curl_url_cleanupp(CURLU **u)
{
        if (*u)
                curl_url_cleanup(*u);
}

/* libarchive */

#include <archive.h>
#include <archive_entry.h>

static inline void archive_read_freep(struct archive **a)
{
        if (*a)
                archive_read_free(*a);
}

static inline void archive_write_freep(struct archive **a)
{
        if (*a)
                archive_write_free(*a);
}

static inline void archive_entry_freep(struct archive_entry **e)
{
        if (*e)
                archive_entry_free(*e);
}

/* libmicrohttpd */

#include <microhttpd.h>

static inline void mhd_response_destroyp(struct MHD_Response **r)
{
        if (*r)
                MHD_destroy_response(*r);
}

#endif /* LII_CLEANUP_CLIENT */
