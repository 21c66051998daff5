/* Logging through a replaceable callback.
 *
 * The library never writes to stdout; diagnostics go to mt_log, whose default sink writes
 * "mltrain: <level>: <message>" lines to stderr. The threshold defaults to WARN or to the
 * level named by MLTRAIN_LOG (debug|info|warn|error), read once on first use; an explicit
 * mt_log_set_level wins. A mutex serialises the callback so lines from several threads never
 * interleave and the callback may be swapped at any time; hence a callback must not call
 * mt_log itself. Messages longer than 2 KiB are truncated. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core_internal.h"
#include "mltrain/core.h"

static pthread_mutex_t log_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t log_once = PTHREAD_ONCE_INIT;
static mt_log_fn log_fn;
static void *log_user;
static _Atomic int log_level = MT_LOG_WARN;

static const char *const level_names[MT_LOG_LEVEL_COUNT] = {"debug", "info", "warn", "error"};

static void log_init_from_env(void)
{
    const char *e = getenv("MLTRAIN_LOG");
    if (!e || !*e) return;
    for (int i = 0; i < MT_LOG_LEVEL_COUNT; i++) {
        if (strcasecmp(e, level_names[i]) == 0) {
            log_level = i;
            return;
        }
    }
    if (strcasecmp(e, "warning") == 0) log_level = MT_LOG_WARN;
}

static void default_sink(mt_log_level level, const char *msg, void *user)
{
    (void)user;
    fprintf(stderr, "mltrain: %s: %s\n", level_names[level], msg);
}

void mt__log_reset_after_fork(void)
{
    static const pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    memcpy(&log_mutex, &fresh, sizeof fresh);
}

void mt_log_set_callback(mt_log_fn fn, void *user)
{
    pthread_mutex_lock(&log_mutex);
    log_fn = fn;
    log_user = user;
    pthread_mutex_unlock(&log_mutex);
}

void mt_log_set_level(mt_log_level level)
{
    pthread_once(&log_once, log_init_from_env);
    if ((int)level < 0) level = MT_LOG_DEBUG;
    if (level >= MT_LOG_LEVEL_COUNT) level = MT_LOG_ERROR;
    log_level = (int)level;
}

mt_log_level mt_log_get_level(void)
{
    pthread_once(&log_once, log_init_from_env);
    return (mt_log_level)log_level;
}

void mt_log(mt_log_level level, const char *fmt, ...)
{
    pthread_once(&log_once, log_init_from_env);
    if ((int)level < log_level || (int)level < 0) return;
    if (level >= MT_LOG_LEVEL_COUNT) level = MT_LOG_ERROR;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Drop a trailing newline: sinks add their own line structure. */
    size_t len = strlen(msg);
    if (len > 0 && msg[len - 1] == '\n') msg[len - 1] = '\0';
    pthread_mutex_lock(&log_mutex);
    if (log_fn)
        log_fn(level, msg, log_user);
    else
        default_sink(level, msg, NULL);
    pthread_mutex_unlock(&log_mutex);
}
