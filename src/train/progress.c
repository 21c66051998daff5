/* The one-line progress text (mt_train_progress_format): epoch, batch, samples per second,
 * ETA of the epoch and the last values of the channels worth watching (objectives,
 * misclassification rates, nll, the learning rate). The command prints it in place with \r
 * on a terminal, or as plain lines (monitor records only) otherwise. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "train_impl.h"

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static bool worth_showing(const char *name)
{
    return ends_with(name, "objective") || ends_with(name, "_misclass") ||
           !strcmp(name, "learning_rate");
}

static void append_time(mt_strbuf *sb, double s)
{
    long t = (long)(s + 0.5);
    if (t >= 3600)
        mt_strbuf_appendf(sb, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else
        mt_strbuf_appendf(sb, "%ld:%02ld", t / 60, t % 60);
}

void mt_train_progress_format(const mt_train_progress *p, mt_strbuf *sb)
{
    if (p->n_phases > 1) mt_strbuf_appendf(sb, "phase %d/%d  ", (int)p->phase + 1, (int)p->n_phases);
    mt_strbuf_appendf(sb, "epoch %lld", (long long)p->epoch);
    if (p->max_epochs > 0) mt_strbuf_appendf(sb, "/%lld", (long long)p->max_epochs);
    if (p->is_monitor) {
        mt_strbuf_append(sb, p->epoch == 0 ? " (before training)" : " done");
    } else {
        mt_strbuf_appendf(sb, "  batch %lld/%lld", (long long)p->batch, (long long)p->n_batches);
        if (p->samples_per_s > 0) mt_strbuf_appendf(sb, "  %.0f samples/s", p->samples_per_s);
        if (p->eta_s >= 0) {
            mt_strbuf_append(sb, "  ETA ");
            append_time(sb, p->eta_s);
        }
    }
    int shown = 0;
    for (int32_t i = 0; i < p->n_channels && shown < 6; i++) {
        if (!worth_showing(p->channel_names[i])) continue;
        mt_strbuf_appendf(sb, "%s%s %.4g", shown ? " " : "  ", p->channel_names[i],
                          p->channel_values[i]);
        shown++;
    }
}
