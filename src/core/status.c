/* Status codes, the per-thread error slot and the monotonic clock.
 *
 * Every fallible call records (status, message) in a thread-local slot and returns the
 * status, so callers can propagate a code cheaply and still show the user why something
 * failed. The slot is fixed-size (MT_ERR_MSG_MAX) so recording an error never allocates:
 * it must work when memory has run out. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mltrain/core.h"

static _Thread_local struct {
    mt_status code;
    char msg[MT_ERR_MSG_MAX];
} err_slot;

const char *mt_status_name(mt_status st)
{
    switch (st) {
#define MT__STATUS_NAME(name, val, desc)                                                           \
    case MT_##name:                                                                                \
        return #name;
        MT_STATUS_MAP(MT__STATUS_NAME)
#undef MT__STATUS_NAME
    default:
        break;
    }
    return "UNKNOWN_STATUS";
}

const char *mt_status_str(mt_status st)
{
    switch (st) {
#define MT__STATUS_DESC(name, val, desc)                                                           \
    case MT_##name:                                                                                \
        return desc;
        MT_STATUS_MAP(MT__STATUS_DESC)
#undef MT__STATUS_DESC
    default:
        break;
    }
    return "unknown status";
}

mt_status mt_err_setv(mt_status code, const char *fmt, va_list ap)
{
    /* Format into a local buffer first: fmt's arguments may point into the slot itself
     * (e.g. re-recording mt_last_error()). */
    char tmp[MT_ERR_MSG_MAX];
    if (fmt) {
        vsnprintf(tmp, sizeof tmp, fmt, ap);
    } else {
        snprintf(tmp, sizeof tmp, "%s", mt_status_str(code));
    }
    memcpy(err_slot.msg, tmp, sizeof tmp);
    err_slot.code = code;
    return code;
}

mt_status mt_err_set(mt_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mt_err_setv(code, fmt, ap);
    va_end(ap);
    return code;
}

mt_status mt_err_prefix(mt_status code, const char *fmt, ...)
{
    char prefix[MT_ERR_MSG_MAX];
    char tmp[MT_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* prefix + old message, truncated to the slot (no snprintf: the compiler rightly warns
     * that two full-size strings may not fit). */
    size_t pl = strlen(prefix), ml = strlen(err_slot.msg);
    if (pl > MT_ERR_MSG_MAX - 1) pl = MT_ERR_MSG_MAX - 1;
    if (ml > MT_ERR_MSG_MAX - 1 - pl) ml = MT_ERR_MSG_MAX - 1 - pl;
    memcpy(tmp, prefix, pl);
    memcpy(tmp + pl, err_slot.msg, ml);
    tmp[pl + ml] = '\0';
    memcpy(err_slot.msg, tmp, pl + ml + 1);
    err_slot.code = code;
    return code;
}

mt_status mt_err_errno(int errnum, const char *fmt, ...)
{
    char what[MT_ERR_MSG_MAX];
    char ebuf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    /* strerror_r (GNU flavour under _GNU_SOURCE) is thread-safe, unlike strerror. */
    const char *es = strerror_r(errnum, ebuf, sizeof ebuf);
    mt_status code = errnum == ENOMEM ? MT_ERR_NOMEM : MT_ERR_IO;
    return mt_err_set(code, "%s: %s", what, es);
}

const char *mt_last_error(void)
{
    return err_slot.msg;
}

mt_status mt_last_status(void)
{
    return err_slot.code;
}

void mt_err_clear(void)
{
    err_slot.code = MT_OK;
    err_slot.msg[0] = '\0';
}

_Noreturn void mt__assert_fail(const char *file, int line, const char *cond)
{
    fprintf(stderr, "mltrain: internal assertion failed at %s:%d: %s\n", file, line, cond);
    fflush(stderr);
    abort();
}

double mt_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
