/* PNG pictures with libpng's simplified API (no setjmp): weight tiles as Pylearn2's patch viewer
 * draws them, and reading a PNG back (size, channels, pixels) for tests and tools.
 *
 * Tiles: each filter is scaled to its own max |value| and mapped around gray, value v to
 * 127.5 + 127.5 * v / max|v| rounded (an all-zero filter is uniform 128), so positive weights
 * are light and negative dark whatever the filter's scale. The grid has ceil(sqrt(n)) columns;
 * tiles are separated and surrounded by one black pixel. The image is encoded in memory and
 * published with mt_file_write_atomic. */
#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <string.h>

#include "io_impl.h"

/* Images above this many pixels per side are refused (libpng's own limit is 1e6). */
#define MAX_SIDE 100000

void mt_png_tile_grid(int64_t n, int64_t *grid_rows, int64_t *grid_cols)
{
    int64_t gc = 1;
    while (gc * gc < n)
        gc++;
    *grid_cols = n > 0 ? gc : 0;
    *grid_rows = n > 0 ? (n + gc - 1) / gc : 0;
}

static mt_status encode_and_write(const char *path, const uint8_t *pix, int64_t w, int64_t h,
                                  int32_t channels)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)w;
    img.height = (png_uint_32)h;
    img.format = channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
    png_alloc_size_t size = 0;
    png_int_32 stride = (png_int_32)(w * channels);
    if (!png_image_write_to_memory(&img, NULL, &size, 0, pix, stride, NULL) || size == 0) {
        mt_status st =
            mt_err_set(MT_ERR_INTERNAL, "png '%s': libpng cannot encode: %s", path, img.message);
        png_image_free(&img);
        return st;
    }
    void *buf = mt_malloc(size);
    if (!buf) return mt_err_prefix(MT_ERR_NOMEM, "png '%s': ", path);
    mt_status st = MT_OK;
    if (!png_image_write_to_memory(&img, buf, &size, 0, pix, stride, NULL))
        st = mt_err_set(MT_ERR_INTERNAL, "png '%s': libpng cannot encode: %s", path, img.message);
    png_image_free(&img);
    if (st == MT_OK) st = mt_file_write_atomic(path, buf, size, 0644);
    mt_free(buf);
    return st;
}

mt_status mt_png_write_tiles(const char *path, const float *filters, int64_t n, int64_t rows,
                             int64_t cols, int64_t channels)
{
    if (n <= 0 || rows <= 0 || cols <= 0 || (channels != 1 && channels != 3))
        return mt_err_set(MT_ERR_INVALID,
                          "png '%s': cannot tile %lld filters of %lldx%lldx%lld (need n, rows, "
                          "cols > 0 and 1 or 3 channels)",
                          path, (long long)n, (long long)rows, (long long)cols,
                          (long long)channels);
    int64_t gr, gc;
    mt_png_tile_grid(n, &gr, &gc);
    int64_t w = gc * (cols + 1) + 1, h = gr * (rows + 1) + 1;
    if (w > MAX_SIDE || h > MAX_SIDE)
        return mt_err_set(MT_ERR_RANGE,
                          "png '%s': %lld filters of %lldx%lld make a %lldx%lld "
                          "image, more than %d pixels per side",
                          path, (long long)n, (long long)rows, (long long)cols, (long long)w,
                          (long long)h, MAX_SIDE);
    uint8_t *pix = mt_calloc((size_t)(w * h * channels), 1); /* black borders */
    if (!pix) return mt_err_prefix(MT_ERR_NOMEM, "png '%s': ", path);
    int64_t fsize = rows * cols * channels;
    for (int64_t k = 0; k < n; k++) {
        const float *f = filters + k * fsize;
        double mx = 0;
        for (int64_t i = 0; i < fsize; i++)
            if (isfinite(f[i]) && fabs(f[i]) > mx) mx = fabs(f[i]);
        int64_t y0 = 1 + (k / gc) * (rows + 1), x0 = 1 + (k % gc) * (cols + 1);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++)
                for (int64_t ch = 0; ch < channels; ch++) {
                    double v = f[(r * cols + c) * channels + ch];
                    double g = 127.5 + (mx > 0 && isfinite(v) ? 127.5 * v / mx : 0.0);
                    if (!(g >= 0)) g = 0; /* NaN */
                    if (g > 255) g = 255;
                    pix[((y0 + r) * w + x0 + c) * channels + ch] = (uint8_t)lround(g);
                }
    }
    mt_status st = encode_and_write(path, pix, w, h, (int32_t)channels);
    mt_free(pix);
    return st;
}

/* Opens a PNG with the simplified API; on failure names the file and libpng's reason. */
static mt_status begin_read(png_image *img, const char *path)
{
    memset(img, 0, sizeof *img);
    img->version = PNG_IMAGE_VERSION;
    FILE *f = fopen(path, "rb");
    if (!f) return mt_err_errno(errno, "png '%s'", path);
    fclose(f);
    if (!png_image_begin_read_from_file(img, path)) {
        mt_status st =
            mt_err_set(MT_ERR_FORMAT, "png '%s': not a readable PNG (%s)", path, img->message);
        png_image_free(img);
        return st;
    }
    return MT_OK;
}

mt_status mt_png_info(const char *path, int64_t *width, int64_t *height, int32_t *channels)
{
    png_image img;
    mt_status st = begin_read(&img, path);
    if (st != MT_OK) return st;
    if (width) *width = img.width;
    if (height) *height = img.height;
    if (channels) *channels = (int32_t)PNG_IMAGE_SAMPLE_CHANNELS(img.format);
    png_image_free(&img);
    return MT_OK;
}

mt_status mt_png_read(const char *path, uint8_t **pixels, int64_t *width, int64_t *height,
                      int32_t *channels)
{
    *pixels = NULL;
    png_image img;
    mt_status st = begin_read(&img, path);
    if (st != MT_OK) return st;
    /* 8-bit samples, colormaps expanded, the file's channel layout kept */
    img.format &= ~(png_uint_32)(PNG_FORMAT_FLAG_COLORMAP | PNG_FORMAT_FLAG_LINEAR);
    size_t size = PNG_IMAGE_SIZE(img);
    uint8_t *buf = mt_malloc(size ? size : 1);
    if (!buf) {
        png_image_free(&img);
        return mt_err_prefix(MT_ERR_NOMEM, "png '%s': ", path);
    }
    if (!png_image_finish_read(&img, NULL, buf, 0, NULL)) {
        st = mt_err_set(MT_ERR_FORMAT, "png '%s': cannot decode (%s)", path, img.message);
        png_image_free(&img);
        mt_free(buf);
        return st;
    }
    *pixels = buf;
    if (width) *width = img.width;
    if (height) *height = img.height;
    if (channels) *channels = (int32_t)PNG_IMAGE_SAMPLE_CHANNELS(img.format);
    png_image_free(&img);
    return MT_OK;
}
