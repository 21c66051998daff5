/* Private interface of the io module: the in-memory checkpoint shared by ckpt.c (the C API)
 * and ckpt_hdf5.c (the HDF5 file format), and small helpers shared by the writers. */
#ifndef MT_IO_IMPL_H
#define MT_IO_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mltrain/core.h"
#include "mltrain/io.h"

/* Root attributes every checkpoint file carries; reserved (mt_ckpt_put_* refuses them). */
#define MT__CKPT_FORMAT "mltrain-checkpoint"
#define MT__CKPT_VERSION 1
/* The group holding the monitor histories; no array may live under it. */
#define MT__CKPT_MONITORS "monitors"
/* The most one checkpoint holds (attributes, arrays, monitors, channels of all monitors,
 * records of all channels): the checkpoint API refuses more with ERR_RANGE, and the isolated
 * reader (ckpt_isolate.c) refuses a stream past them, so every checkpoint mltrain writes it can
 * read back. Far above what a run writes (a layer has ~18 channels per monitoring dataset). */
#define MT__CKPT_MAX_ATTRS 16384
#define MT__CKPT_MAX_ARRAYS 32768
#define MT__CKPT_MAX_MONITORS 1024
#define MT__CKPT_MAX_CHANNELS 32768
#define MT__CKPT_MAX_RECORDS ((int64_t)1 << 27)

typedef struct mt__ckpt_attr {
    char *name;
    mt_ckpt_attr_kind kind;
    int64_t i;
    double d;
    char *s;
} mt__ckpt_attr;

typedef struct mt__ckpt_array {
    char *name;
    mt_dtype dtype;
    int32_t ndim;
    int64_t dims[MT_MAX_DIMS];
    size_t nbytes;
    void *data; /* C order, nbytes bytes (mt_malloc; NULL when nbytes is 0) */
} mt__ckpt_array;

struct mt_ckpt {
    char *path; /* the file it was read from (for messages), or NULL */
    int32_t n_attrs, cap_attrs;
    mt__ckpt_attr *attrs;
    int32_t n_arrays, cap_arrays;
    mt__ckpt_array *arrays;
    int32_t n_monitors, cap_monitors;
    mt_monitor_history *monitors;
};

/* Checks an array name ("params/h0_W"): non-empty '/'-separated components, none empty,
 * "." or "..", and not under "monitors". what names the caller for the message. */
mt_status mt__ckpt_check_array_name(const char *name, const char *what);
/* Checks a monitor or channel name (one HDF5 path component). */
mt_status mt__ckpt_check_component(const char *name, const char *what);
/* Adds an array taking ownership of data (freed on failure too). */
mt_status mt__ckpt_put_array_owned(mt_ckpt *c, const char *name, mt_dtype dt, int32_t ndim,
                                   const int64_t *dims, void *data, size_t nbytes);
/* Adds a monitor history by moving *h into c (h is left zeroed; cleared on failure). */
mt_status mt__ckpt_put_monitor_move(mt_ckpt *c, mt_monitor_history *h);
/* Whether the dtype can be stored in a checkpoint file. */
bool mt__ckpt_dtype_ok(mt_dtype dt);

/* Parses a checked checkpoint file image (the whole file's bytes) in this process with
 * libhdf5 (ckpt_hdf5.c); path is for messages. */
mt_status mt__ckpt_parse_image(const char *path, unsigned char *img, uint64_t size, mt_ckpt **out);
/* mt__ckpt_parse_image that hands each array to on_array(user, c, a) as soon as it is read
 * (a is c's last array); on_array may take a->data (setting it NULL), so at most one array's
 * data need be held at a time (the isolated reader streams them to the parent this way). */
typedef void (*mt__ckpt_array_fn)(void *user, mt_ckpt *c, mt__ckpt_array *a);
mt_status mt__ckpt_parse_image_each(const char *path, unsigned char *img, uint64_t size,
                                    mt_ckpt **out, mt__ckpt_array_fn on_array, void *user);
/* The same in a forked child, the result streamed back and rebuilt here (ckpt_isolate.c): a
 * crash, an abnormal exit or no result within timeout_s seconds is an error naming the file.
 * Takes img (mt_free'd, also on failure). */
mt_status mt__ckpt_read_isolated(mt_ckpt **out, const char *path, unsigned char *img, uint64_t size,
                                 double timeout_s);

/* Formats a double with the fewest digits that read back to the same value ("0.1", "1e-07"),
 * non-finite as "nan", "inf", "-inf". buf holds at least 32 bytes. */
const char *mt__fmt_double(double v, char *buf, size_t len);
/* Appends s as a JSON string literal (quotes and escapes). */
void mt__json_append_string(mt_strbuf *sb, const char *s);

/* Hand-encoded protocol buffers and TFRecord framing of TensorBoard event files
 * (monitor_log.c; tb_hparams.c uses them too). wire: 0 varint, 1 fixed64, 2 bytes, 5 fixed32. */
void mt__pb_varint(mt_strbuf *sb, uint64_t v);
void mt__pb_tag(mt_strbuf *sb, uint32_t field, uint32_t wire);
void mt__pb_bytes(mt_strbuf *sb, uint32_t field, const void *data, size_t n);
void mt__put_le(uint8_t *p, uint64_t v, int n); /* n bytes little-endian */
double mt__wall_time(void);                      /* seconds since the epoch */
/* Event fields wall_time (1, now) and step (2). */
void mt__pb_event_head(mt_strbuf *ev, int64_t step);
/* Appends the serialized Event ev to out as one TFRecord (length, masked CRCs). */
void mt__tb_frame(mt_strbuf *out, const mt_strbuf *ev);

#endif
