/* Pictures: weight tiles checked pixel by pixel (read back with libpng and, independently, by a
 * zlib-only PNG decoder in Python), argument and file errors, and cairo plots: a PNG of the
 * asked size that is not blank and shows each channel's colour. */
#include "io_test_util.h"

/* Expected tile pixel for value v in a filter whose max |value| is mx. */
static int want_pixel(double v, double mx)
{
    double g = 127.5 + (mx > 0 ? 127.5 * v / mx : 0);
    return (int)lround(g);
}

/* Decodes 8-bit gray/RGB/RGBA PNGs with zlib only (all five row filters) and prints
 * "W H C" and then every sample, for comparison with libpng's reading. */
static const char *const png_script =
    "import sys, struct, zlib\n"
    "d = open(sys.argv[1], 'rb').read()\n"
    "assert d[:8] == b'\\x89PNG\\r\\n\\x1a\\n', 'signature'\n"
    "pos, idat, hdr = 8, b'', None\n"
    "while pos < len(d):\n"
    "    n, t = struct.unpack('>I4s', d[pos:pos + 8])\n"
    "    body = d[pos + 8:pos + 8 + n]\n"
    "    assert zlib.crc32(t + body) == struct.unpack('>I', d[pos + 8 + n:pos + 12 + n])[0], t\n"
    "    if t == b'IHDR': hdr = struct.unpack('>IIBBBBB', body)\n"
    "    if t == b'IDAT': idat += body\n"
    "    pos += 12 + n\n"
    "w, h, depth, ctype = hdr[0], hdr[1], hdr[2], hdr[3]\n"
    "assert depth == 8, depth\n"
    "c = {0: 1, 2: 3, 4: 2, 6: 4}[ctype]\n"
    "raw = zlib.decompress(idat)\n"
    "stride = w * c\n"
    "out, prev = [], bytearray(stride)\n"
    "for y in range(h):\n"
    "    f = raw[y * (stride + 1)]\n"
    "    line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])\n"
    "    for i in range(stride):\n"
    "        a = line[i - c] if i >= c else 0\n"
    "        b = prev[i]\n"
    "        cc = prev[i - c] if i >= c else 0\n"
    "        if f == 1: line[i] = (line[i] + a) & 255\n"
    "        elif f == 2: line[i] = (line[i] + b) & 255\n"
    "        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255\n"
    "        elif f == 4:\n"
    "            p = a + b - cc; pa, pb, pc = abs(p - a), abs(p - b), abs(p - cc)\n"
    "            pr = a if pa <= pb and pa <= pc else (b if pb <= pc else cc)\n"
    "            line[i] = (line[i] + pr) & 255\n"
    "    out += list(line); prev = line\n"
    "print(w, h, c)\n"
    "print(' '.join(map(str, out)))\n";

/* Compares libpng's reading of the file with the Python decoder's. */
static void cross_check_png(const char *path, const uint8_t *pix, int64_t w, int64_t h, int32_t c)
{
    char args[1100], *out;
    snprintf(args, sizeof args, "'%s'", path);
    MT_CHECK_EQ_INT(run_python(png_script, args, NULL, &out), 0);
    long pw, ph, pc;
    int used;
    MT_CHECK(sscanf(out, "%ld %ld %ld%n", &pw, &ph, &pc, &used) == 3);
    MT_CHECK(pw == w && ph == h && pc == c);
    const char *p = out + used;
    for (int64_t i = 0; i < w * h * c; i++) {
        long v;
        MT_CHECK(sscanf(p, "%ld%n", &v, &used) == 1);
        p += used;
        if (v != pix[i])
            mt_test_fail(__FILE__, __LINE__, "sample %lld: python %ld, libpng %d", (long long)i, v,
                         pix[i]);
    }
    mt_free(out);
}

MT_TEST(png_tiles_gray_pixels)
{
    /* 5 filters of 3x4: grid 3 columns x 2 rows -> 3*5+1 by 2*4+1 pixels */
    int64_t n = 5, rows = 3, cols = 4;
    float f[5 * 12];
    for (int i = 0; i < 60; i++)
        f[i] = (float)xval(i, 0);
    for (int i = 24; i < 36; i++) /* filter 2 all zero: uniform gray */
        f[i] = 0;
    char *p = tpath("tiles.png");
    MT_CHECK_OK(mt_png_write_tiles(p, f, n, rows, cols, 1));
    int64_t gr, gc;
    mt_png_tile_grid(n, &gr, &gc);
    MT_CHECK(gr == 2 && gc == 3);
    int64_t w, h;
    int32_t ch;
    MT_CHECK_OK(mt_png_info(p, &w, &h, &ch));
    MT_CHECK(w == 16 && h == 9 && ch == 1);
    uint8_t *pix;
    MT_CHECK_OK(mt_png_read(p, &pix, &w, &h, &ch));
    for (int64_t k = 0; k < n; k++) {
        double mx = 0;
        for (int i = 0; i < 12; i++)
            mx = fmax(mx, fabs(f[k * 12 + i]));
        int64_t y0 = 1 + (k / 3) * 4, x0 = 1 + (k % 3) * 5;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++)
                MT_CHECK_EQ_INT(pix[(y0 + r) * w + x0 + c],
                                want_pixel(f[k * 12 + r * cols + c], mx));
    }
    for (int64_t x = 0; x < w; x++) /* borders are black */
        MT_CHECK(pix[x] == 0 && pix[4 * w + x] == 0 && pix[8 * w + x] == 0);
    for (int64_t y = 0; y < h; y++)
        MT_CHECK(pix[y * w] == 0 && pix[y * w + 5] == 0 && pix[y * w + 15] == 0);
    /* the unused sixth cell stays black; the max |value| of a filter maps to 0 or 255 */
    MT_CHECK(pix[(5 + 1) * w + 11 + 1] == 0);
    int extreme = 0;
    for (int64_t i = 0; i < w * h; i++)
        extreme += pix[i] == 255;
    MT_CHECK(extreme >= 1);
    cross_check_png(p, pix, w, h, ch);
    mt_free(pix);
    MT_CHECK(!has_temp_files(mt_test_tmpdir()));
}

MT_TEST(png_tiles_rgb)
{
    int64_t n = 2, rows = 2, cols = 2;
    float f[2 * 2 * 2 * 3] = {
        1, 0, -1, 0.5f, 0,  0,  0, 0, 0, -0.5f, 0.25f, 1, /* filter 0, max |v| 1 */
        2, 2, 2,  -2,   -2, -2, 0, 0, 0, 1,     1,     1, /* filter 1, max |v| 2 */
    };
    char *p = tpath("rgb.png");
    MT_CHECK_OK(mt_png_write_tiles(p, f, n, rows, cols, 3));
    uint8_t *pix;
    int64_t w, h;
    int32_t ch;
    MT_CHECK_OK(mt_png_read(p, &pix, &w, &h, &ch));
    MT_CHECK(w == 2 * 3 + 1 && h == 1 * 3 + 1 && ch == 3);
    const uint8_t *px = &pix[(1 * w + 1) * 3]; /* filter 0, pixel (0,0) */
    MT_CHECK(px[0] == 255 && px[1] == 128 && px[2] == 0);
    px = &pix[(2 * w + 2) * 3]; /* filter 0, pixel (1,1) */
    MT_CHECK(px[0] == want_pixel(-0.5, 1) && px[1] == want_pixel(0.25, 1) && px[2] == 255);
    px = &pix[(1 * w + 5) * 3]; /* filter 1, pixel (0,1) */
    MT_CHECK(px[0] == 0 && px[1] == 0 && px[2] == 0);
    px = &pix[(2 * w + 5) * 3]; /* filter 1, pixel (1,1) = 1 of max 2 */
    MT_CHECK(px[0] == want_pixel(1, 2) && px[1] == px[0] && px[2] == px[0]);
    cross_check_png(p, pix, w, h, ch);
    mt_free(pix);
}

MT_TEST(png_errors)
{
    float f[4] = {0};
    char *p = tpath("e.png");
    MT_CHECK_ERR(mt_png_write_tiles(p, f, 0, 2, 2, 1), MT_ERR_INVALID, "cannot tile 0 filters");
    MT_CHECK_ERR(mt_png_write_tiles(p, f, 1, 2, 2, 2), MT_ERR_INVALID, "1 or 3 channels");
    MT_CHECK_ERR(mt_png_write_tiles(tpath("no/dir/x.png"), f, 1, 2, 2, 1), MT_ERR_IO, "x.png");
    int64_t w, h;
    int32_t c;
    MT_CHECK_ERR(mt_png_info(tpath("missing.png"), &w, &h, &c), MT_ERR_IO, "No such file");
    write_bytes(p, "not a png at all", 16);
    MT_CHECK_ERR(mt_png_info(p, &w, &h, &c), MT_ERR_FORMAT, "not a readable PNG");
    /* a truncated PNG */
    MT_CHECK_OK(mt_png_write_tiles(p, f, 1, 2, 2, 1));
    size_t len;
    char *d = slurp(p, &len);
    write_bytes(p, d, len - 20);
    uint8_t *pix;
    MT_CHECK_ERR(mt_png_read(p, &pix, &w, &h, &c), MT_ERR_FORMAT, "e.png");
    MT_CHECK(pix == NULL);
    mt_free(d);
}

static void sample_history(mt_monitor_history *h)
{
    mt_monitor_history_init(h, "monitor");
    const char *names[3] = {"train_objective", "valid_objective", "valid_y_misclass"};
    for (int c = 0; c < 3; c++) {
        mt_chan_history *ch = mt_monitor_history_channel(h, names[c], true);
        for (int e = 0; e <= 12; e++) {
            double v = c == 2 ? 0.5 * exp(-0.2 * e) : (2.0 + c * 0.3) * exp(-0.3 * e) + 0.1;
            if (c == 1 && e == 6) v = NAN; /* a gap */
            mt_chan_record r = {v, e, e * 100, e * 6000, e * 1.5};
            MT_CHECK_OK(mt_chan_history_append(ch, &r));
        }
    }
}

/* Pixels within a small distance of the colour (r, g, b) in 0..255. */
static int64_t count_colour(const uint8_t *pix, int64_t n, int32_t ch, int r, int g, int b)
{
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *p = pix + i * ch;
        if (abs(p[0] - r) < 12 && abs(p[1] - g) < 12 && abs(p[2] - b) < 12) k++;
    }
    return k;
}

MT_TEST(plot_channels_png)
{
    mt_monitor_history h;
    sample_history(&h);
    char *p = tpath("curves.png");
    const char *chans[3] = {"train_objective", "valid_objective", "valid_y_misclass"};
    mt_status st = mt_plot_channels(p, &h, 3, chans, 640, 400);
#if !MT_HAVE_CAIRO_TEST
    MT_CHECK_EQ_INT(st, MT_ERR_NOT_BUILT);
    mt_monitor_history_clear(&h);
    MT_SKIP("cairo not built in (mt_plot_channels answers ERR_NOT_BUILT, checked)");
#endif
    MT_CHECK_OK(st);
    int64_t w, hh;
    int32_t ch;
    uint8_t *pix;
    MT_CHECK_OK(mt_png_read(p, &pix, &w, &hh, &ch));
    MT_CHECK(w == 640 && hh == 400 && ch >= 3);
    int64_t n = w * hh, white = count_colour(pix, n, ch, 255, 255, 255);
    int64_t dark = 0;
    for (int64_t i = 0; i < n; i++)
        dark += pix[i * ch] < 60 && pix[i * ch + 1] < 60 && pix[i * ch + 2] < 60;
    MT_CHECK(white > n / 2); /* white background */
    MT_CHECK(white < n - 2000);
    MT_CHECK(dark > 500); /* axes, ticks, labels */
    /* each line in its tab10 colour: blue, orange, green */
    MT_CHECK(count_colour(pix, n, ch, 31, 119, 180) > 200);
    MT_CHECK(count_colour(pix, n, ch, 255, 127, 14) > 200);
    MT_CHECK(count_colour(pix, n, ch, 44, 160, 44) > 200);
    mt_free(pix);
    /* another size */
    MT_CHECK_OK(mt_plot_channels(p, &h, 1, chans, 200, 150));
    MT_CHECK_OK(mt_png_info(p, &w, &hh, &ch));
    MT_CHECK(w == 200 && hh == 150);
    MT_CHECK(!has_temp_files(mt_test_tmpdir()));
    /* errors */
    const char *bad[1] = {"valid_nll"};
    MT_CHECK_ERR(
        mt_plot_channels(p, &h, 1, bad, 640, 400), MT_ERR_NOT_FOUND,
        "no channel 'valid_nll' (it has: train_objective, valid_objective, valid_y_misclass)");
    MT_CHECK_ERR(mt_plot_channels(p, &h, 1, chans, 20, 400), MT_ERR_INVALID, "20x400");
    MT_CHECK_ERR(mt_plot_channels(p, &h, 0, chans, 640, 400), MT_ERR_INVALID, "no channels");
    /* a single record, all-NaN channel: still a valid picture */
    mt_monitor_history one;
    mt_monitor_history_init(&one, "monitor");
    mt_chan_history *c = mt_monitor_history_channel(&one, "x_objective", true);
    mt_chan_record r = {NAN, 0, 0, 0, 0};
    MT_CHECK_OK(mt_chan_history_append(c, &r));
    const char *xo[1] = {"x_objective"};
    MT_CHECK_OK(mt_plot_channels(p, &one, 1, xo, 300, 200));
    mt_monitor_history_clear(&one);
    mt_monitor_history_clear(&h);
}

MT_TEST(plot_parallel_png)
{
    static const char *const acts[3] = {"relu", "tanh", "sigmoid"};
    mt_plot_axis ax[3] = {
        {.name = "lr", .scale = MT_PLOT_LOG, .lo = 1e-4, .hi = 1},
        {.name = "act", .scale = MT_PLOT_CATEGORICAL, .n_labels = 3, .labels = acts},
        {.name = "objective", .scale = MT_PLOT_LINEAR, .lo = NAN, .hi = NAN},
    };
    /* the best (low objective: yellow, thick), a bad one (dark purple), a faint one and one
     * with an absent value (the line breaks) */
    double v[4 * 3] = {1e-3, 0, 0.5, 0.3, 2, 3.0, 0.01, 1, 2.0, 0.05, NAN, 1.0};
    double color[4] = {0.5, 3.0, NAN, 1.0};
    uint8_t style[4] = {MT_PLOT_LINE_BEST, MT_PLOT_LINE_NORMAL, MT_PLOT_LINE_FAINT,
                        MT_PLOT_LINE_NORMAL};
    mt_parallel_plot pp = {3, ax, 4, v, color, style, true, "objective"};
    char *p = tpath("parallel.png");
    mt_status st = mt_plot_parallel(p, &pp, 640, 400);
#if !MT_HAVE_CAIRO_TEST
    MT_CHECK_EQ_INT(st, MT_ERR_NOT_BUILT);
    MT_SKIP("cairo not built in (mt_plot_parallel answers ERR_NOT_BUILT, checked)");
#endif
    MT_CHECK_OK(st);
    int64_t w, hh;
    int32_t ch;
    uint8_t *pix;
    MT_CHECK_OK(mt_png_read(p, &pix, &w, &hh, &ch));
    MT_CHECK(w == 640 && hh == 400 && ch >= 3);
    int64_t n = w * hh;
    MT_CHECK(count_colour(pix, n, ch, 255, 255, 255) > n / 2);
    /* the best line in viridis' yellow end, thick: far more than the colour bar's top rows */
    MT_CHECK(count_colour(pix, n, ch, 253, 231, 37) > 600);
    mt_free(pix);
    /* the same without the best line: only the colour bar is yellow */
    style[0] = MT_PLOT_LINE_FAINT;
    MT_CHECK_OK(mt_plot_parallel(p, &pp, 640, 400));
    MT_CHECK_OK(mt_png_read(p, &pix, &w, &hh, &ch));
    MT_CHECK(count_colour(pix, w * hh, ch, 253, 231, 37) < 300);
    mt_free(pix);
    MT_CHECK(!has_temp_files(mt_test_tmpdir()));
    /* errors */
    MT_CHECK_ERR(mt_plot_parallel(p, &pp, 100, 400), MT_ERR_INVALID, "100x400");
    mt_parallel_plot none = {0};
    MT_CHECK_ERR(mt_plot_parallel(p, &none, 640, 400), MT_ERR_INVALID, "no axes");
    ax[1].labels = NULL;
    MT_CHECK_ERR(mt_plot_parallel(p, &pp, 640, 400), MT_ERR_INVALID,
                 "categorical axis 'act' has no labels");
}
