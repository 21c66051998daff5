/* Channel plots with cairo: the learning curves of a monitor history against epochs, one
 * coloured line per channel (with point markers while there are few points), axes with "nice"
 * ticks (1, 2 or 5 times a power of ten), grid lines, an x label and a legend, on white. The
 * PNG is encoded in memory (cairo_surface_write_to_png_stream) and published with
 * mt_file_write_atomic. Built only with cairo (MT_HAVE_CAIRO); otherwise ERR_NOT_BUILT. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "io_impl.h"
#include "mltrain/mt_config.h"

#if MT_HAVE_CAIRO
#include <cairo.h>

#define MIN_W 160
#define MIN_H 120
#define MAX_SIDE 10000

/* Matplotlib's tab10 palette. */
static const double palette[10][3] = {
    {0.122, 0.467, 0.706}, {1.000, 0.498, 0.055}, {0.173, 0.627, 0.173}, {0.839, 0.153, 0.157},
    {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294}, {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498},
    {0.737, 0.741, 0.133}, {0.090, 0.745, 0.812},
};

typedef struct frame {
    double x0, x1, y0, y1;           /* data ranges */
    double left, right, top, bottom; /* plot area in pixels */
} frame;

static double px(const frame *f, double x)
{
    return f->left + (x - f->x0) / (f->x1 - f->x0) * (f->right - f->left);
}

static double py(const frame *f, double y)
{
    return f->bottom - (y - f->y0) / (f->y1 - f->y0) * (f->bottom - f->top);
}

static double nice_step(double range, int target)
{
    double raw = range / target;
    double mag = pow(10, floor(log10(raw)));
    double norm = raw / mag;
    return (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
}

/* Data ranges over the finite values of the chosen channels, padded; false if nothing. */
static bool data_ranges(frame *f, const mt_chan_history *const *ch, int32_t n)
{
    bool any = false;
    f->x0 = f->y0 = INFINITY;
    f->x1 = f->y1 = -INFINITY;
    for (int32_t i = 0; i < n; i++)
        for (int32_t k = 0; k < ch[i]->n; k++) {
            const mt_chan_record *r = &ch[i]->records[k];
            if (!isfinite(r->value)) continue;
            any = true;
            f->x0 = fmin(f->x0, (double)r->epoch);
            f->x1 = fmax(f->x1, (double)r->epoch);
            f->y0 = fmin(f->y0, r->value);
            f->y1 = fmax(f->y1, r->value);
        }
    if (!any) {
        f->x0 = 0, f->x1 = 1, f->y0 = 0, f->y1 = 1;
        return false;
    }
    if (f->x1 == f->x0) f->x0 -= 0.5, f->x1 += 0.5;
    if (f->y1 == f->y0) {
        double d = fabs(f->y0) > 0 ? fabs(f->y0) * 0.1 : 0.5;
        f->y0 -= d, f->y1 += d;
    }
    double pad = (f->y1 - f->y0) * 0.05;
    f->y0 -= pad, f->y1 += pad;
    return true;
}

static void draw_axes(cairo_t *cr, const frame *f, int32_t width, int32_t height)
{
    char label[64];
    cairo_text_extents_t te;
    cairo_set_font_size(cr, 11);
    cairo_set_line_width(cr, 1);
    /* y ticks and horizontal grid */
    double ys = nice_step(f->y1 - f->y0, 6);
    for (double v = ceil(f->y0 / ys) * ys; v <= f->y1 + ys * 1e-9; v += ys) {
        double y = round(py(f, v)) + 0.5, vv = fabs(v) < ys * 1e-9 ? 0 : v;
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, f->left, y);
        cairo_line_to(cr, f->right, y);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_move_to(cr, f->left - 4, y);
        cairo_line_to(cr, f->left, y);
        cairo_stroke(cr);
        snprintf(label, sizeof label, "%.6g", vv);
        cairo_text_extents(cr, label, &te);
        cairo_move_to(cr, f->left - 7 - te.x_advance, y + te.height / 2);
        cairo_show_text(cr, label);
    }
    /* x ticks (whole epochs when the range allows) and vertical grid */
    double xs = nice_step(f->x1 - f->x0, 8);
    if (xs < 1 && f->x1 - f->x0 >= 1) xs = 1;
    for (double v = ceil(f->x0 / xs) * xs; v <= f->x1 + xs * 1e-9; v += xs) {
        double x = round(px(f, v)) + 0.5;
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, x, f->top);
        cairo_line_to(cr, x, f->bottom);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_move_to(cr, x, f->bottom);
        cairo_line_to(cr, x, f->bottom + 4);
        cairo_stroke(cr);
        snprintf(label, sizeof label, "%.6g", fabs(v) < xs * 1e-9 ? 0 : v);
        cairo_text_extents(cr, label, &te);
        cairo_move_to(cr, x - te.x_advance / 2, f->bottom + 6 + te.height);
        cairo_show_text(cr, label);
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_rectangle(cr, f->left + 0.5, f->top + 0.5, f->right - f->left, f->bottom - f->top);
    cairo_stroke(cr);
    cairo_set_font_size(cr, 12);
    cairo_text_extents(cr, "epoch", &te);
    cairo_move_to(cr, (f->left + f->right) / 2 - te.x_advance / 2, height - 8);
    cairo_show_text(cr, "epoch");
}

static void draw_lines(cairo_t *cr, const frame *f, const mt_chan_history *const *ch, int32_t n)
{
    cairo_save(cr);
    cairo_rectangle(cr, f->left, f->top, f->right - f->left, f->bottom - f->top);
    cairo_clip(cr);
    cairo_set_line_width(cr, 2);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    for (int32_t i = 0; i < n; i++) {
        const double *c = palette[i % 10];
        cairo_set_source_rgb(cr, c[0], c[1], c[2]);
        bool pen = false;
        for (int32_t k = 0; k < ch[i]->n; k++) {
            const mt_chan_record *r = &ch[i]->records[k];
            if (!isfinite(r->value)) {
                pen = false;
                continue;
            }
            double x = px(f, (double)r->epoch), y = py(f, r->value);
            if (pen)
                cairo_line_to(cr, x, y);
            else
                cairo_move_to(cr, x, y);
            pen = true;
        }
        cairo_stroke(cr);
        if (ch[i]->n <= 60)
            for (int32_t k = 0; k < ch[i]->n; k++) {
                const mt_chan_record *r = &ch[i]->records[k];
                if (!isfinite(r->value)) continue;
                cairo_arc(cr, px(f, (double)r->epoch), py(f, r->value), 2.5, 0, 2 * M_PI);
                cairo_fill(cr);
            }
    }
    cairo_restore(cr);
}

static void draw_legend(cairo_t *cr, const frame *f, const mt_chan_history *const *ch, int32_t n)
{
    cairo_text_extents_t te;
    cairo_set_font_size(cr, 11);
    double wmax = 0, lh = 15;
    for (int32_t i = 0; i < n; i++) {
        cairo_text_extents(cr, ch[i]->name, &te);
        wmax = fmax(wmax, te.x_advance);
    }
    double bw = wmax + 38, bh = n * lh + 8;
    double bx = f->right - bw - 8, by = f->top + 8;
    cairo_set_source_rgba(cr, 1, 1, 1, 0.85);
    cairo_rectangle(cr, bx, by, bw, bh);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);
    for (int32_t i = 0; i < n; i++) {
        const double *c = palette[i % 10];
        double y = by + 4 + lh * i + lh / 2;
        cairo_set_source_rgb(cr, c[0], c[1], c[2]);
        cairo_set_line_width(cr, 2);
        cairo_move_to(cr, bx + 6, y);
        cairo_line_to(cr, bx + 26, y);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_move_to(cr, bx + 32, y + 4);
        cairo_show_text(cr, ch[i]->name);
    }
}

static cairo_status_t png_sink(void *closure, const unsigned char *data, unsigned int len)
{
    mt_strbuf *sb = closure;
    mt_strbuf_appendn(sb, (const char *)data, len);
    return sb->failed ? CAIRO_STATUS_NO_MEMORY : CAIRO_STATUS_SUCCESS;
}

static mt_status render(const char *path, const mt_chan_history *const *ch, int32_t n,
                        int32_t width, int32_t height)
{
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
    cairo_t *cr = cairo_create(s);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    frame f;
    data_ranges(&f, ch, n);
    f.left = 64, f.right = width - 16, f.top = 14, f.bottom = height - 40;
    draw_axes(cr, &f, width, height);
    draw_lines(cr, &f, ch, n);
    draw_legend(cr, &f, ch, n);
    cairo_status_t cs = cairo_status(cr);
    cairo_destroy(cr);
    mt_strbuf png;
    mt_strbuf_init(&png);
    if (cs == CAIRO_STATUS_SUCCESS) {
        cairo_surface_flush(s);
        cs = cairo_surface_write_to_png_stream(s, png_sink, &png);
    }
    cairo_surface_destroy(s);
    mt_status st = MT_OK;
    if (cs != CAIRO_STATUS_SUCCESS)
        st = mt_err_set(cs == CAIRO_STATUS_NO_MEMORY ? MT_ERR_NOMEM : MT_ERR_INTERNAL,
                        "plot '%s': cairo failed: %s", path, cairo_status_to_string(cs));
    if (st == MT_OK) st = mt_file_write_atomic(path, png.data, png.len, 0644);
    mt_strbuf_deinit(&png);
    return st;
}

mt_status mt_plot_channels(const char *path, const mt_monitor_history *h, int32_t n_channels,
                           const char *const *channels, int32_t width, int32_t height)
{
    if (width < MIN_W || height < MIN_H || width > MAX_SIDE || height > MAX_SIDE)
        return mt_err_set(MT_ERR_INVALID, "plot '%s': size %dx%d is outside %dx%d..%dx%d", path,
                          (int)width, (int)height, MIN_W, MIN_H, MAX_SIDE, MAX_SIDE);
    if (n_channels <= 0) return mt_err_set(MT_ERR_INVALID, "plot '%s': no channels to plot", path);
    const mt_chan_history **ch = mt_calloc((size_t)n_channels, sizeof *ch);
    if (!ch) return mt_err_prefix(MT_ERR_NOMEM, "plot '%s': ", path);
    mt_status st = MT_OK;
    for (int32_t i = 0; i < n_channels && st == MT_OK; i++) {
        for (int32_t k = 0; k < h->n && !ch[i]; k++)
            if (!strcmp(h->channels[k].name, channels[i])) ch[i] = &h->channels[k];
        if (ch[i]) continue;
        mt_strbuf sb;
        mt_strbuf_init(&sb);
        for (int32_t k = 0; k < h->n; k++)
            mt_strbuf_appendf(&sb, "%s%s", k ? ", " : "", h->channels[k].name);
        st =
            mt_err_set(MT_ERR_NOT_FOUND, "plot '%s': monitor '%s' has no channel '%s' (it has: %s)",
                       path, h->name ? h->name : "", channels[i], h->n ? sb.data : "none");
        mt_strbuf_deinit(&sb);
    }
    if (st == MT_OK) st = render(path, ch, n_channels, width, height);
    mt_free(ch);
    return st;
}

#else /* !MT_HAVE_CAIRO */

mt_status mt_plot_channels(const char *path, const mt_monitor_history *h, int32_t n_channels,
                           const char *const *channels, int32_t width, int32_t height)
{
    return mt_err_set(MT_ERR_NOT_BUILT,
                      "plot '%s': cairo is not built into this mltrain (install libcairo2-dev "
                      "and reconfigure)",
                      path);
}

#endif
