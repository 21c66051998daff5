/* Channel plots with cairo: the learning curves of a monitor history against epochs, one
 * coloured line per channel (with point markers while there are few points), axes with "nice"
 * ticks (1, 2 or 5 times a power of ten), grid lines, an x label and a legend, on white. The
 * PNG is encoded in memory (cairo_surface_write_to_png_stream) and published with
 * mt_file_write_atomic. Parallel coordinates (mt_plot_parallel): one vertical axis per column
 * (linear, log10 or evenly spaced categories), one polyline per row coloured on a viridis scale
 * with a colour bar, faint rows first and highlighted rows last. Built only with cairo
 * (MT_HAVE_CAIRO); otherwise ERR_NOT_BUILT. */
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

/* One point of a polyline that breaks at gaps (a missing or non-finite value): the first point
 * after a gap starts a new piece. */
static void pen_to(cairo_t *cr, bool *pen, bool gap, double x, double y)
{
    if (gap) {
        *pen = false;
        return;
    }
    if (*pen)
        cairo_line_to(cr, x, y);
    else
        cairo_move_to(cr, x, y);
    *pen = true;
}

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

static void draw_axes(cairo_t *cr, const frame *f, int32_t width, int32_t height,
                      const char *x_label)
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
    cairo_text_extents(cr, x_label, &te);
    cairo_move_to(cr, (f->left + f->right) / 2 - te.x_advance / 2, height - 8);
    cairo_show_text(cr, x_label);
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
            pen_to(cr, &pen, !isfinite(r->value), px(f, (double)r->epoch), py(f, r->value));
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

/* Encodes the surface as PNG and publishes it at path (atomic); destroys cr and s. */
static mt_status finish_png(const char *path, cairo_surface_t *s, cairo_t *cr)
{
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

static cairo_t *new_canvas(cairo_surface_t **s, int32_t width, int32_t height)
{
    *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
    cairo_t *cr = cairo_create(*s);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    return cr;
}

static mt_status render(const char *path, const mt_chan_history *const *ch, int32_t n,
                        const char *x_label, int32_t width, int32_t height)
{
    cairo_surface_t *s;
    cairo_t *cr = new_canvas(&s, width, height);
    frame f;
    data_ranges(&f, ch, n);
    f.left = 64, f.right = width - 16, f.top = 14, f.bottom = height - 40;
    draw_axes(cr, &f, width, height, x_label);
    draw_lines(cr, &f, ch, n);
    draw_legend(cr, &f, ch, n);
    return finish_png(path, s, cr);
}

mt_status mt_plot_channels_xlabel(const char *path, const mt_monitor_history *h, int32_t n_channels,
                                  const char *const *channels, const char *x_label, int32_t width,
                                  int32_t height)
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
    if (st == MT_OK) st = render(path, ch, n_channels, x_label ? x_label : "epoch", width, height);
    mt_free(ch);
    return st;
}

/* ---------------------------------------------------------------- parallel coordinates */

/* Viridis at 5 stops: 0 dark purple (bad) .. 1 yellow (good). */
static void colormap(double t, double rgb[3])
{
    static const double stops[5][3] = {{0.267, 0.005, 0.329},
                                       {0.231, 0.322, 0.545},
                                       {0.129, 0.569, 0.549},
                                       {0.369, 0.788, 0.384},
                                       {0.993, 0.906, 0.144}};
    t = fmin(1, fmax(0, t)) * 4;
    int k = (int)fmin(3, floor(t));
    double u = t - k;
    for (int c = 0; c < 3; c++)
        rgb[c] = stops[k][c] * (1 - u) + stops[k + 1][c] * u;
}

typedef struct pc_axis {
    double lo, hi; /* in axis units (log10 for LOG, index for CATEGORICAL) */
    bool any;
} pc_axis;

static double pc_unit(const mt_plot_axis *a, double v)
{
    if (!isfinite(v)) return NAN;
    if (a->scale == MT_PLOT_LOG) return v > 0 ? log10(v) : NAN;
    if (a->scale == MT_PLOT_CATEGORICAL) {
        double k = round(v);
        return k >= 0 && k < a->n_labels ? k : NAN;
    }
    return v;
}

static void pc_ranges(const mt_parallel_plot *p, pc_axis *r)
{
    for (int32_t j = 0; j < p->n_axes; j++) {
        const mt_plot_axis *a = &p->axes[j];
        pc_axis *x = &r[j];
        if (a->scale == MT_PLOT_CATEGORICAL) {
            x->lo = -0.5, x->hi = a->n_labels - 0.5, x->any = true;
            continue;
        }
        x->lo = INFINITY, x->hi = -INFINITY, x->any = false;
        double bounds[2] = {pc_unit(a, a->lo), pc_unit(a, a->hi)};
        for (int b = 0; b < 2; b++)
            if (isfinite(bounds[b])) x->lo = fmin(x->lo, bounds[b]), x->hi = fmax(x->hi, bounds[b]);
        for (int32_t i = 0; i < p->n_lines; i++) {
            double u = pc_unit(a, p->values[(size_t)i * p->n_axes + j]);
            if (!isfinite(u)) continue;
            x->lo = fmin(x->lo, u), x->hi = fmax(x->hi, u), x->any = true;
        }
        if (!isfinite(x->lo)) x->lo = 0, x->hi = 1;
        if (x->hi == x->lo) {
            double d = fabs(x->lo) > 0 ? fabs(x->lo) * 0.1 : 0.5;
            x->lo -= d, x->hi += d;
        }
    }
}

/* Shows s at (x, y), shortened with "..." to max_w pixels; align: 0 left, 1 centre, 2 right. */
static void pc_text(cairo_t *cr, const char *s, double x, double y, double max_w, int align)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%s", s);
    cairo_text_extents_t te;
    cairo_text_extents(cr, buf, &te);
    for (size_t n = strlen(buf); te.x_advance > max_w && n > 4; n--) {
        memcpy(buf + n - 4, "...", 4); /* shorten: keep the start, end with "..." */
        cairo_text_extents(cr, buf, &te);
    }
    cairo_move_to(cr, align == 1 ? x - te.x_advance / 2 : align == 2 ? x - te.x_advance : x, y);
    cairo_show_text(cr, buf);
}

/* pos: 0 the first axis (its name left-aligned), 2 the last (right-aligned), 1 others. */
static void pc_axis_draw(cairo_t *cr, const mt_plot_axis *a, const pc_axis *r, double x, double top,
                         double bottom, double spacing, int pos)
{
    char label[64];
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_set_line_width(cr, 1.5);
    cairo_move_to(cr, round(x) + 0.5, top);
    cairo_line_to(cr, round(x) + 0.5, bottom);
    cairo_stroke(cr);
    cairo_set_font_size(cr, 12);
    pc_text(cr, a->name ? a->name : "",
            pos == 0   ? x - 6
            : pos == 2 ? x + 6
                       : x,
            top - 10, pos == 1 ? spacing - 6 : spacing * 0.9, pos);
    cairo_set_font_size(cr, 10);
    cairo_set_line_width(cr, 1);
    double h = bottom - top;
    if (a->scale == MT_PLOT_CATEGORICAL) {
        for (int32_t k = 0; k < a->n_labels; k++) {
            double y = bottom - (k - r->lo) / (r->hi - r->lo) * h;
            cairo_move_to(cr, x - 4, y);
            cairo_line_to(cr, x + 4, y);
            cairo_stroke(cr);
            pc_text(cr, a->labels[k] ? a->labels[k] : "", x + 6, y + 4, spacing * 0.55, 0);
        }
        return;
    }
    double step = a->scale == MT_PLOT_LOG && r->hi - r->lo >= 2 ? ceil((r->hi - r->lo) / 6)
                                                                : nice_step(r->hi - r->lo, 5);
    for (double v = ceil(r->lo / step) * step; v <= r->hi + step * 1e-9; v += step) {
        double y = bottom - (v - r->lo) / (r->hi - r->lo) * h;
        cairo_move_to(cr, x - 4, y);
        cairo_line_to(cr, x, y);
        cairo_stroke(cr);
        double shown = a->scale == MT_PLOT_LOG ? pow(10, v) : fabs(v) < step * 1e-9 ? 0 : v;
        snprintf(label, sizeof label, "%.4g", shown);
        pc_text(cr, label, x + 5, y + 4, spacing * 0.55, 0);
    }
    if (a->scale == MT_PLOT_LOG) pc_text(cr, "(log scale)", x, bottom + 14, spacing - 6, 1);
}

static void pc_line(cairo_t *cr, const mt_parallel_plot *p, const pc_axis *r, int32_t i,
                    double left, double spacing, double top, double bottom)
{
    bool pen = false;
    for (int32_t j = 0; j < p->n_axes; j++) {
        double u = pc_unit(&p->axes[j], p->values[(size_t)i * p->n_axes + j]);
        pen_to(cr, &pen, !isfinite(u), left + j * spacing,
               bottom - (u - r[j].lo) / (r[j].hi - r[j].lo) * (bottom - top));
    }
    cairo_stroke(cr);
}

static mt_status render_parallel(const char *path, const mt_parallel_plot *p, int32_t width,
                                 int32_t height)
{
    pc_axis *r = mt_calloc((size_t)p->n_axes, sizeof *r);
    if (!r) return mt_err_prefix(MT_ERR_NOMEM, "plot '%s': ", path);
    pc_ranges(p, r);
    double c0 = INFINITY, c1 = -INFINITY;
    for (int32_t i = 0; p->color && i < p->n_lines; i++)
        if (isfinite(p->color[i])) c0 = fmin(c0, p->color[i]), c1 = fmax(c1, p->color[i]);
    bool bar = c0 <= c1;
    double right_margin = bar ? 110 : 60;
    double left = 40, top = 40, bottom = height - 30;
    double spacing = p->n_axes > 1 ? (width - left - right_margin) / (p->n_axes - 1) : 0;
    if (p->n_axes == 1) left = (width - right_margin) / 2;
    cairo_surface_t *s;
    cairo_t *cr = new_canvas(&s, width, height);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    /* faint lines first, then the normal ones, then the best */
    for (int pass = 0; pass < 3; pass++)
        for (int32_t i = 0; i < p->n_lines; i++) {
            uint8_t style = p->style ? p->style[i] : MT_PLOT_LINE_NORMAL;
            if ((pass == 0) != (style == MT_PLOT_LINE_FAINT)) continue;
            if (pass > 0 && (pass == 2) != (style == MT_PLOT_LINE_BEST)) continue;
            double c = p->color ? p->color[i] : NAN, rgb[3] = {0.5, 0.5, 0.5};
            if (style == MT_PLOT_LINE_FAINT) {
                cairo_set_source_rgba(cr, 0.55, 0.55, 0.55, 0.35);
                cairo_set_line_width(cr, 1);
            } else {
                if (isfinite(c) && bar) {
                    double t = c1 > c0 ? (c - c0) / (c1 - c0) : 1;
                    colormap(p->color_low_is_good ? 1 - t : t, rgb);
                }
                cairo_set_source_rgba(cr, rgb[0], rgb[1], rgb[2],
                                      style == MT_PLOT_LINE_BEST ? 1 : 0.75);
                cairo_set_line_width(cr, style == MT_PLOT_LINE_BEST ? 3.5 : 1.5);
            }
            pc_line(cr, p, r, i, left, spacing, top, bottom);
        }
    for (int32_t j = 0; j < p->n_axes; j++)
        pc_axis_draw(cr, &p->axes[j], &r[j], left + j * spacing, top, bottom,
                     p->n_axes > 1 ? spacing : width / 2.0,
                     p->n_axes == 1       ? 1
                     : j == 0             ? 0
                     : j == p->n_axes - 1 ? 2
                                          : 1);
    if (bar) { /* colour bar: good at the top */
        double bx = width - 40, bh = bottom - top;
        for (int k = 0; k < (int)bh; k++) {
            double rgb[3];
            colormap(1 - k / bh, rgb);
            cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
            cairo_rectangle(cr, bx, top + k, 14, 1);
            cairo_fill(cr);
        }
        char lab[64];
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_set_font_size(cr, 10);
        snprintf(lab, sizeof lab, "%.4g", p->color_low_is_good ? c0 : c1);
        pc_text(cr, lab, bx + 7, top - 4, 60, 1);
        snprintf(lab, sizeof lab, "%.4g", p->color_low_is_good ? c1 : c0);
        pc_text(cr, lab, bx + 7, bottom + 12, 60, 1);
        if (p->color_label) {
            cairo_set_font_size(cr, 11);
            pc_text(cr, p->color_label, bx + 7, top - 22, 100, 1);
        }
    }
    mt_free(r);
    return finish_png(path, s, cr);
}

mt_status mt_plot_parallel(const char *path, const mt_parallel_plot *p, int32_t width,
                           int32_t height)
{
    if (width < MIN_W || height < MIN_H || width > MAX_SIDE || height > MAX_SIDE)
        return mt_err_set(MT_ERR_INVALID, "plot '%s': size %dx%d is outside %dx%d..%dx%d", path,
                          (int)width, (int)height, MIN_W, MIN_H, MAX_SIDE, MAX_SIDE);
    if (!p || p->n_axes <= 0 || !p->axes)
        return mt_err_set(MT_ERR_INVALID, "plot '%s': no axes to plot", path);
    if (p->n_lines < 0 || (p->n_lines > 0 && !p->values))
        return mt_err_set(MT_ERR_INVALID, "plot '%s': bad lines (%d)", path, (int)p->n_lines);
    for (int32_t j = 0; j < p->n_axes; j++)
        if (p->axes[j].scale == MT_PLOT_CATEGORICAL &&
            (p->axes[j].n_labels <= 0 || !p->axes[j].labels))
            return mt_err_set(MT_ERR_INVALID, "plot '%s': categorical axis '%s' has no labels",
                              path, p->axes[j].name ? p->axes[j].name : "");
    return render_parallel(path, p, width, height);
}

#else /* !MT_HAVE_CAIRO */

static mt_status not_built(const char *path)
{
    return mt_err_set(MT_ERR_NOT_BUILT,
                      "plot '%s': cairo is not built into this mltrain (install libcairo2-dev "
                      "and reconfigure)",
                      path);
}

mt_status mt_plot_channels_xlabel(const char *path, const mt_monitor_history *h, int32_t n_channels,
                                  const char *const *channels, const char *x_label, int32_t width,
                                  int32_t height)
{
    (void)h, (void)n_channels, (void)channels, (void)x_label, (void)width, (void)height;
    return not_built(path);
}

mt_status mt_plot_parallel(const char *path, const mt_parallel_plot *p, int32_t width,
                           int32_t height)
{
    (void)p, (void)width, (void)height;
    return not_built(path);
}

#endif

mt_status mt_plot_channels(const char *path, const mt_monitor_history *h, int32_t n_channels,
                           const char *const *channels, int32_t width, int32_t height)
{
    return mt_plot_channels_xlabel(path, h, n_channels, channels, "epoch", width, height);
}
