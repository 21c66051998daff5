/* Unit tests of the core module: status and error slot, logging, allocation hooks and fault
 * injection, the string builder, hashing (SHA-256 against FIPS 180 examples and coreutils),
 * Philox (against Random123's known-answer vectors), the thread pool and the file helpers.
 * The numeric parts (16-bit floats, dtypes) are in test_core_numeric.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mt_test.h"

/* A small deterministic generator for test inputs (splitmix64), independent of the code
 * under test. */
static uint64_t rng_state = 0x0123456789ABCDEFULL;
static uint64_t rnd64(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* ================================================================ status and errors */

MT_TEST(status_names)
{
    MT_CHECK_STR_EQ(mt_status_name(MT_OK), "OK");
    MT_CHECK_STR_EQ(mt_status_name(MT_ERR_SHAPE), "ERR_SHAPE");
    MT_CHECK_STR_EQ(mt_status_name(MT_ERR_INTERNAL), "ERR_INTERNAL");
    MT_CHECK_STR_EQ(mt_status_str(MT_ERR_SHAPE), "shape mismatch");
    MT_CHECK_STR_EQ(mt_status_str(MT_ERR_NOMEM), "out of memory");
    MT_CHECK_STR_EQ(mt_status_str(MT_OK), "success");
    /* Every code has a distinct name and a description; unknown codes still give strings. */
    for (int a = 0; a < MT_STATUS_COUNT; a++) {
        MT_CHECK(strlen(mt_status_str((mt_status)-a)) > 0);
        MT_CHECK(strcmp(mt_status_name((mt_status)-a), "UNKNOWN_STATUS") != 0);
        for (int b = 0; b < a; b++)
            MT_CHECK(strcmp(mt_status_name((mt_status)-a), mt_status_name((mt_status)-b)) != 0);
    }
    MT_CHECK(mt_status_name((mt_status)-99) != NULL);
    MT_CHECK(mt_status_str((mt_status)42) != NULL);
}

static void *other_thread_error(void *arg)
{
    (void)arg;
    /* A fresh thread starts with an empty slot, and its failures stay in its own slot. */
    int empty = mt_last_error()[0] == '\0' && mt_last_status() == MT_OK;
    mt_err_set(MT_ERR_COMM, "thread-local failure");
    return (void *)(intptr_t)empty;
}

MT_TEST(error_slot)
{
    mt_err_clear();
    MT_CHECK_STR_EQ(mt_last_error(), "");
    MT_CHECK_EQ_INT(mt_last_status(), MT_OK);
    MT_CHECK_EQ_INT(mt_err_set(MT_ERR_SHAPE, "matmul: inner dims differ (%d vs %d)", 3, 4),
                    MT_ERR_SHAPE);
    MT_CHECK_STR_EQ(mt_last_error(), "matmul: inner dims differ (3 vs 4)");
    MT_CHECK_EQ_INT(mt_last_status(), MT_ERR_SHAPE);
    MT_CHECK_EQ_INT(mt_err_prefix(MT_ERR_FORMAT, "npy '%s': ", "x.npy"), MT_ERR_FORMAT);
    MT_CHECK_STR_EQ(mt_last_error(), "npy 'x.npy': matmul: inner dims differ (3 vs 4)");
    MT_CHECK_EQ_INT(mt_last_status(), MT_ERR_FORMAT);
    /* Re-recording the current message through a format argument must not corrupt it. */
    mt_err_set(MT_ERR_IO, "again: %s", mt_last_error());
    MT_CHECK_STR_EQ(mt_last_error(), "again: npy 'x.npy': matmul: inner dims differ (3 vs 4)");

    MT_CHECK_EQ_INT(mt_err_errno(ENOENT, "open '%s'", "a.txt"), MT_ERR_IO);
    MT_CHECK_STR_EQ(mt_last_error(), "open 'a.txt': No such file or directory");
    MT_CHECK_EQ_INT(mt_err_errno(ENOMEM, "alloc"), MT_ERR_NOMEM);

    pthread_t th;
    void *ret;
    mt_err_set(MT_ERR_SHAPE, "main thread message");
    MT_CHECK(pthread_create(&th, NULL, other_thread_error, NULL) == 0);
    pthread_join(th, &ret);
    MT_CHECK(ret == (void *)1);
    MT_CHECK_STR_EQ(mt_last_error(), "main thread message");
    mt_err_clear();
    MT_CHECK_STR_EQ(mt_last_error(), "");
    MT_CHECK_EQ_INT(mt_last_status(), MT_OK);
}

MT_TEST(error_long_messages_truncate)
{
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    mt_err_set(MT_ERR_INVALID, "%s", big);
    MT_CHECK_EQ_INT(strlen(mt_last_error()), MT_ERR_MSG_MAX - 1);
    mt_err_prefix(MT_ERR_INVALID, "prefix: ");
    MT_CHECK_EQ_INT(strlen(mt_last_error()), MT_ERR_MSG_MAX - 1);
    MT_CHECK(strncmp(mt_last_error(), "prefix: xxx", 11) == 0);
    mt_err_prefix(MT_ERR_INVALID, "%s", big);
    MT_CHECK_EQ_INT(strlen(mt_last_error()), MT_ERR_MSG_MAX - 1);
}

/* ================================================================ logging */

typedef struct log_capture {
    int count;
    mt_log_level last_level;
    char last[256];
} log_capture;

static void capture_log(mt_log_level level, const char *msg, void *user)
{
    log_capture *c = user;
    c->count++;
    c->last_level = level;
    snprintf(c->last, sizeof c->last, "%s", msg);
}

MT_TEST(log_callback_and_level)
{
    log_capture cap = {0};
    mt_log_set_callback(capture_log, &cap);
    mt_log_set_level(MT_LOG_WARN);
    MT_CHECK_EQ_INT(mt_log_get_level(), MT_LOG_WARN);
    mt_log(MT_LOG_INFO, "hidden %d", 1);
    mt_log(MT_LOG_DEBUG, "hidden %d", 2);
    MT_CHECK_EQ_INT(cap.count, 0);
    mt_log(MT_LOG_WARN, "shown %d\n", 3);
    MT_CHECK_EQ_INT(cap.count, 1);
    MT_CHECK_STR_EQ(cap.last, "shown 3");
    MT_CHECK_EQ_INT(cap.last_level, MT_LOG_WARN);
    mt_log(MT_LOG_ERROR, "bad");
    MT_CHECK_EQ_INT(cap.last_level, MT_LOG_ERROR);
    mt_log_set_level(MT_LOG_DEBUG);
    mt_log(MT_LOG_DEBUG, "debug now");
    MT_CHECK_EQ_INT(cap.count, 3);
    MT_CHECK_STR_EQ(cap.last, "debug now");
    mt_log_set_callback(NULL, NULL);
    mt_log_set_level(MT_LOG_WARN);
}

MT_TEST(log_default_stderr_format)
{
    /* Redirect stderr to a file and check the default sink's line format. */
    char path[600];
    snprintf(path, sizeof path, "%s/stderr.txt", mt_test_tmpdir());
    fflush(stderr);
    int saved = dup(2);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    MT_CHECK(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    mt_log_set_level(MT_LOG_WARN);
    mt_log(MT_LOG_WARN, "disk %s is slow", "/x");
    mt_log(MT_LOG_INFO, "not shown");
    mt_log(MT_LOG_ERROR, "boom");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char *text;
    size_t len;
    MT_CHECK_OK(mt_file_read_all(path, &text, &len, 0));
    MT_CHECK_STR_EQ(text, "mltrain: warn: disk /x is slow\nmltrain: error: boom\n");
    mt_free(text);
}

MT_TEST(log_level_from_env)
{
    /* MLTRAIN_LOG is read on first use; this case runs in its own process. */
    setenv("MLTRAIN_LOG", "debug", 1);
    MT_CHECK_EQ_INT(mt_log_get_level(), MT_LOG_DEBUG);
}

/* ================================================================ allocation */

static atomic_int hook_mallocs, hook_frees;
static void *count_malloc(size_t n)
{
    atomic_fetch_add(&hook_mallocs, 1);
    return malloc(n);
}
static void count_free(void *p)
{
    atomic_fetch_add(&hook_frees, 1);
    free(p);
}

MT_TEST(alloc_hooks)
{
    mt_allocator a = {count_malloc, NULL, NULL, count_free};
    mt_set_allocator(&a);
    char *p = mt_malloc(100);
    MT_CHECK(p != NULL);
    char *s = mt_strdup("hello");
    MT_CHECK_STR_EQ(s, "hello");
    MT_CHECK_EQ_INT(atomic_load(&hook_mallocs), 2);
    mt_free(p);
    mt_free(s);
    mt_free(NULL);
    MT_CHECK_EQ_INT(atomic_load(&hook_frees), 2);
    mt_set_allocator(NULL);
    p = mt_malloc(10);
    mt_free(p);
    MT_CHECK_EQ_INT(atomic_load(&hook_mallocs), 2);
}

MT_TEST(alloc_fault_injection)
{
    mt_alloc_fail_after(3);
    void *a = mt_malloc(10), *b = mt_calloc(2, 8);
    MT_CHECK(a && b);
    mt_err_clear();
    void *c = mt_malloc(123);
    MT_CHECK(c == NULL);
    MT_CHECK_EQ_INT(mt_last_status(), MT_ERR_NOMEM);
    MT_CHECK_STR_EQ(mt_last_error(), "out of memory allocating 123 bytes");
    void *d = mt_malloc(5); /* injection fires once */
    MT_CHECK(d != NULL);
    mt_alloc_fail_after(1);
    MT_CHECK(mt_realloc(d, 1000) == NULL);
    MT_CHECK(strstr(mt_last_error(), "1000 bytes") != NULL);
    mt_alloc_fail_after(1);
    MT_CHECK(mt_strdup("x") == NULL);
    mt_alloc_fail_after(0);
    MT_CHECK(mt_calloc((size_t)1 << 40, (size_t)1 << 40) == NULL); /* overflow, no abort */
    MT_CHECK_EQ_INT(mt_last_status(), MT_ERR_NOMEM);
    mt_free(a);
    mt_free(b);
    mt_free(d);
}

MT_TEST(alloc_aligned)
{
    size_t aligns[] = {1, 8, 16, 64, 4096};
    for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
        unsigned char *p = mt_aligned_alloc(aligns[i], 1000);
        MT_CHECK(p != NULL);
        MT_CHECK((uintptr_t)p % aligns[i] == 0);
        memset(p, 0xAB, 1000);
        mt_aligned_free(p);
    }
    mt_err_clear();
    MT_CHECK(mt_aligned_alloc(48, 100) == NULL);
    MT_CHECK_EQ_INT(mt_last_status(), MT_ERR_INVALID);
    MT_CHECK(strstr(mt_last_error(), "48") != NULL);
    mt_aligned_free(NULL);
}

/* ================================================================ string builder */

MT_TEST(strbuf_append_indented)
{
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_strbuf_append_indented(&sb, "a = 1;\nif (a)\n    b();\n", "  ");
    MT_CHECK_STR_EQ(sb.data, "  a = 1;\n  if (a)\n      b();\n");
    mt_strbuf_clear(&sb);
    mt_strbuf_append_indented(&sb, "x\n\ny", ">"); /* empty line kept, last newline added */
    MT_CHECK_STR_EQ(sb.data, ">x\n>\n>y\n");
    mt_strbuf_clear(&sb);
    mt_strbuf_append_indented(&sb, "", ">");
    MT_CHECK_STR_EQ(sb.data, "");
    mt_strbuf_deinit(&sb);
}

MT_TEST(strbuf_growth)
{
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    char ref[20000];
    size_t rl = 0;
    for (int i = 0; i < 1000; i++) {
        mt_strbuf_appendf(&sb, "%d,", i);
        rl += (size_t)sprintf(ref + rl, "%d,", i);
    }
    mt_strbuf_append(&sb, "end");
    mt_strbuf_appendn(&sb, "XYZ", 2);
    rl += (size_t)sprintf(ref + rl, "endXY");
    MT_CHECK_EQ_INT(sb.len, rl);
    MT_CHECK_STR_EQ(sb.data, ref);
    MT_CHECK(sb.cap > sb.len);
    /* A formatted piece longer than any internal scratch buffer. */
    char longs[1500];
    memset(longs, 'q', sizeof longs - 1);
    longs[sizeof longs - 1] = '\0';
    mt_strbuf_clear(&sb);
    MT_CHECK_EQ_INT(sb.len, 0);
    MT_CHECK_STR_EQ(sb.data, "");
    mt_strbuf_appendf(&sb, "<%s|%d>", longs, 7);
    MT_CHECK_EQ_INT(sb.len, 1499 + 4);
    MT_CHECK(sb.data[0] == '<' && sb.data[1500] == '|' && strcmp(sb.data + 1501, "7>") == 0);
    MT_CHECK_OK(mt_strbuf_status(&sb));
    char *taken = mt_strbuf_take(&sb);
    MT_CHECK(sb.data == NULL && sb.len == 0);
    MT_CHECK_EQ_INT(strlen(taken), 1503);
    mt_free(taken);
    /* take on an empty builder gives an empty string, not NULL */
    taken = mt_strbuf_take(&sb);
    MT_CHECK(taken && taken[0] == '\0');
    mt_free(taken);
    mt_strbuf_deinit(&sb);
}

MT_TEST(strbuf_oom_sets_failed)
{
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_strbuf_append(&sb, "abc");
    mt_alloc_fail_after(1);
    char big[200];
    memset(big, 'b', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    mt_strbuf_append(&sb, big); /* needs to grow: fails */
    MT_CHECK(sb.failed);
    mt_strbuf_append(&sb, "more"); /* ignored after a failure */
    MT_CHECK_STR_EQ(sb.data, "abc");
    MT_CHECK_ERR(mt_strbuf_status(&sb), MT_ERR_NOMEM, "out of memory");
    mt_strbuf_deinit(&sb);
    MT_CHECK(!sb.failed);
}

/* ================================================================ hashing */

MT_TEST(hash64_properties)
{
    unsigned char buf[64];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)rnd64();
    MT_CHECK(mt_hash64(buf, 10, 1) == mt_hash64(buf, 10, 1));
    MT_CHECK(mt_hash64(buf, 10, 1) != mt_hash64(buf, 10, 2));
    MT_CHECK(mt_hash64("", 0, 0) != mt_hash64("\0", 1, 0));
    /* Length is part of the hash and a single flipped bit changes about half the output
     * bits (avalanche), for every length and bit position. */
    double total = 0;
    int trials = 0;
    for (size_t n = 1; n <= sizeof buf; n++) {
        uint64_t h = mt_hash64(buf, n, 0);
        MT_CHECK(h != mt_hash64(buf, n - 1, 0));
        for (size_t bit = 0; bit < n * 8; bit += 3) {
            buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
            uint64_t h2 = mt_hash64(buf, n, 0);
            buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
            int pc = __builtin_popcountll(h ^ h2);
            MT_CHECK(pc >= 8 && pc <= 56);
            total += pc;
            trials++;
        }
    }
    double mean = total / trials;
    MT_CHECK(mean > 30.0 && mean < 34.0);
    uint64_t a = 0x1234, b = 0x5678;
    MT_CHECK(mt_hash64_combine(a, b) != mt_hash64_combine(b, a));
    MT_CHECK(mt_hash64_combine(a, b) == mt_hash64_combine(a, b));
    MT_CHECK(mt_hash64_combine(0, 0) != 0);
}

/* FIPS 180-2 appendix B examples (checked against coreutils sha256sum). */
MT_TEST(sha256_fips_vectors)
{
    char hex[65];
    mt_sha256_hex("abc", 3, hex);
    MT_CHECK_STR_EQ(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    mt_sha256_hex("", 0, hex);
    MT_CHECK_STR_EQ(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    mt_sha256_hex(m448, strlen(m448), hex);
    MT_CHECK_STR_EQ(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const char *m896 =
        "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmn"
        "opqklmnopqrlmnopqrsmnopqrstnopqrstu";
    mt_sha256_hex(m896, strlen(m896), hex);
    MT_CHECK_STR_EQ(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");

    /* One million 'a', fed in uneven pieces through the incremental interface. */
    static char as[1000];
    memset(as, 'a', sizeof as);
    mt_sha256 s;
    mt_sha256_init(&s);
    size_t done = 0, piece = 1;
    while (done < 1000000) {
        size_t take = piece < 1000000 - done ? piece : 1000000 - done;
        if (take > sizeof as) take = sizeof as;
        mt_sha256_update(&s, as, take);
        done += take;
        piece = piece * 7 % 997 + 1;
    }
    uint8_t d[32];
    mt_sha256_final(&s, d);
    static const uint8_t want[32] = {0xcd, 0xc7, 0x6e, 0x5c, 0x99, 0x14, 0xfb, 0x92,
                                     0x81, 0xa1, 0xc7, 0xe2, 0x84, 0xd7, 0x3e, 0x67,
                                     0xf1, 0x80, 0x9a, 0x48, 0xa4, 0x97, 0x20, 0x0e,
                                     0x04, 0x6d, 0x39, 0xcc, 0xc7, 0x11, 0x2c, 0xd0};
    MT_CHECK(memcmp(d, want, 32) == 0);
}

MT_TEST(sha256_padding_boundaries)
{
    /* Lengths around the 55/56/64-byte padding boundaries: one-shot and byte-by-byte
     * updates agree. */
    unsigned char msg[200];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (unsigned char)(i * 37 + 11);
    for (size_t n = 0; n <= 130; n++) {
        uint8_t a[32], b[32];
        mt_sha256 s;
        mt_sha256_init(&s);
        mt_sha256_update(&s, msg, n);
        mt_sha256_final(&s, a);
        mt_sha256_init(&s);
        for (size_t i = 0; i < n; i++)
            mt_sha256_update(&s, msg + i, 1);
        mt_sha256_final(&s, b);
        MT_CHECK(memcmp(a, b, 32) == 0);
    }
    /* Lengths at the boundaries against coreutils sha256sum, an independent implementation,
     * when it is installed. */
    if (access("/usr/bin/sha256sum", X_OK) != 0) return;
    static const size_t lens[] = {1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 200};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        char path[600], cmd[700], line[200], hex[65];
        snprintf(path, sizeof path, "%s/msg%zu", mt_test_tmpdir(), lens[k]);
        MT_CHECK_OK(mt_file_write_atomic(path, msg, lens[k], 0644));
        snprintf(cmd, sizeof cmd, "/usr/bin/sha256sum '%s'", path);
        FILE *p = popen(cmd, "r");
        MT_CHECK(p != NULL);
        MT_CHECK(fgets(line, sizeof line, p) != NULL);
        pclose(p);
        mt_sha256_hex(msg, lens[k], hex);
        MT_CHECK(strncmp(line, hex, 64) == 0);
    }
}

/* ================================================================ Philox */

/* Random123 tests/kat_vectors, the three "philox4x32 10" lines: counter, key, expected. */
MT_TEST(philox_known_answers)
{
    static const uint32_t kat[3][10] = {
        {0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x6627e8d5,
         0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d,
         0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09,
         0x94fdcceb, 0x5001e420, 0x24126ea1},
    };
    for (int k = 0; k < 3; k++) {
        uint32_t out[4];
        mt_philox4x32(&kat[k][0], &kat[k][4], out);
        for (int j = 0; j < 4; j++)
            if (out[j] != kat[k][6 + j])
                mt_test_fail(__FILE__, __LINE__, "KAT %d word %d: got 0x%08x, want 0x%08x", k, j,
                             out[j], kat[k][6 + j]);
    }
}

MT_TEST(philox_unit_floats)
{
    MT_CHECK(mt_u32_to_unit_f32(0) == 0.0f);
    MT_CHECK(mt_u32_to_unit_f32(0xFFFFFFFFu) == 1.0f - 0x1p-24f);
    MT_CHECK(mt_u32_to_unit_f32(0xFFFFFFFFu) < 1.0f);
    MT_CHECK(mt_u32_to_unit_f32(0x80000000u) == 0.5f);
    MT_CHECK(mt_u32_to_unit_f32(0x000000FFu) == 0.0f); /* low 8 bits dropped */
    MT_CHECK(mt_u64_to_unit_f64(0, 0) == 0.0);
    MT_CHECK(mt_u64_to_unit_f64(0xFFFFFFFFu, 0xFFFFFFFFu) == 1.0 - 0x1p-53);
    MT_CHECK(mt_u64_to_unit_f64(0x80000000u, 0) == 0.5);
    MT_CHECK(mt_u64_to_unit_f64(0, 0x800u) == 0x1p-53); /* lowest kept bit is bit 11 */
    MT_CHECK(mt_u64_to_unit_f64(0, 0x7FFu) == 0.0);
    /* Uniformity sanity check over a Philox stream: mean ~ 1/2. */
    double sum = 0;
    uint32_t key[2] = {42, 7};
    for (uint32_t i = 0; i < 25000; i++) {
        uint32_t ctr[4] = {i, 0, 0, 0}, out[4];
        mt_philox4x32(ctr, key, out);
        for (int j = 0; j < 4; j++)
            sum += mt_u32_to_unit_f32(out[j]);
    }
    MT_CHECK(fabs(sum / 100000 - 0.5) < 0.005);
}

/* ================================================================ thread pool */

typedef struct cover_ctx {
    int64_t n, min_chunk;
    atomic_int *hits;
    atomic_int calls;
    atomic_int thread_mask;
    atomic_int bad;
} cover_ctx;

static void cover_fn(void *p, int64_t b, int64_t e, int thread)
{
    cover_ctx *c = p;
    atomic_fetch_add(&c->calls, 1);
    if (b >= e || b < 0 || e > c->n) atomic_store(&c->bad, 1);
    /* every chunk has at least min_chunk items unless the whole range is smaller */
    if (e - b < c->min_chunk && e - b != c->n) atomic_store(&c->bad, 2);
    /* each thread index runs at most one chunk per call */
    int prev = atomic_fetch_or(&c->thread_mask, 1 << thread);
    if (prev & (1 << thread)) atomic_store(&c->bad, 3);
    for (int64_t i = b; i < e; i++)
        atomic_fetch_add(&c->hits[i], 1);
}

MT_TEST(threadpool_covers_every_index_once)
{
    static const int64_t ns[] = {0, 1, 2, 3, 5, 7, 8, 15, 16, 17, 100, 1000, 4097};
    static const int64_t mins[] = {0, 1, 2, 3, 7, 64, 5000};
    atomic_int *hits = mt_calloc(5000, sizeof *hits);
    MT_CHECK(hits != NULL);
    for (int size = 1; size <= 4; size++) {
        mt_threadpool *tp;
        MT_CHECK_OK(mt_threadpool_new(&tp, size));
        MT_CHECK_EQ_INT(mt_threadpool_size(tp), size);
        for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++) {
            for (size_t m = 0; m < sizeof mins / sizeof mins[0]; m++) {
                int64_t n = ns[a];
                for (int64_t i = 0; i < n; i++)
                    atomic_store(&hits[i], 0);
                cover_ctx c = {.n = n, .min_chunk = mins[m] < 1 ? 1 : mins[m], .hits = hits};
                mt_threadpool_run(tp, n, mins[m], cover_fn, &c);
                for (int64_t i = 0; i < n; i++)
                    if (atomic_load(&hits[i]) != 1)
                        mt_test_fail(__FILE__, __LINE__,
                                     "size %d n %lld min %lld: index %lld hit %d times", size,
                                     (long long)n, (long long)mins[m], (long long)i,
                                     atomic_load(&hits[i]));
                MT_CHECK_EQ_INT(atomic_load(&c.bad), 0);
                int calls = atomic_load(&c.calls);
                MT_CHECK(calls <= size);
                /* as many chunks as allowed: min(size, n / min_chunk), at least 1 */
                int64_t want = n == 0 ? 0 : n / c.min_chunk;
                if (want > size) want = size;
                if (n > 0 && want < 1) want = 1;
                MT_CHECK_EQ_INT(calls, want);
            }
        }
        mt_threadpool_free(tp);
    }
    mt_free(hits);
}

static void sum_fn(void *p, int64_t b, int64_t e, int thread)
{
    (void)thread;
    atomic_llong *s = p;
    long long local = 0;
    for (int64_t i = b; i < e; i++)
        local += i;
    atomic_fetch_add(s, local);
}

MT_TEST(threadpool_many_pools_and_runs)
{
    /* Create and free many pools (some never used), each running back-to-back jobs. */
    for (int k = 0; k < 40; k++) {
        mt_threadpool *tp;
        MT_CHECK_OK(mt_threadpool_new(&tp, 1 + k % 4));
        int runs = k % 3 == 0 ? 0 : 200;
        for (int r = 0; r < runs; r++) {
            atomic_llong s = 0;
            int64_t n = 1 + (r * 37) % 3000;
            mt_threadpool_run(tp, n, 1, sum_fn, &s);
            MT_CHECK(atomic_load(&s) == (long long)n * (n - 1) / 2);
        }
        mt_threadpool_free(tp);
    }
    mt_threadpool_free(NULL);
}

typedef struct shared_pool_ctx {
    mt_threadpool *tp;
    int bad;
} shared_pool_ctx;

static void *shared_pool_user(void *p)
{
    shared_pool_ctx *c = p;
    for (int r = 0; r < 300; r++) {
        atomic_llong s = 0;
        int64_t n = 100 + r;
        mt_threadpool_run(c->tp, n, 1, sum_fn, &s);
        if (atomic_load(&s) != (long long)n * (n - 1) / 2) c->bad = 1;
    }
    return NULL;
}

MT_TEST(threadpool_shared_by_two_callers)
{
    /* Two application threads using one pool: runs are serialised, none is lost. */
    mt_threadpool *tp;
    MT_CHECK_OK(mt_threadpool_new(&tp, 3));
    shared_pool_ctx a = {tp, 0}, b = {tp, 0};
    pthread_t ta, tb;
    MT_CHECK(pthread_create(&ta, NULL, shared_pool_user, &a) == 0);
    MT_CHECK(pthread_create(&tb, NULL, shared_pool_user, &b) == 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    MT_CHECK(!a.bad && !b.bad);
    mt_threadpool_free(tp);
}

MT_TEST(threadpool_sizes_and_env)
{
    int cpus = mt_cpu_count();
    MT_CHECK(cpus >= 1);
    mt_threadpool *tp;
    unsetenv("MLTRAIN_NUM_THREADS");
    MT_CHECK_OK(mt_threadpool_new(&tp, 0));
    MT_CHECK_EQ_INT(mt_threadpool_size(tp), cpus);
    mt_threadpool_free(tp);
    setenv("MLTRAIN_NUM_THREADS", "3", 1);
    MT_CHECK_OK(mt_threadpool_new(&tp, 0));
    MT_CHECK_EQ_INT(mt_threadpool_size(tp), 3);
    mt_threadpool_free(tp);
    MT_CHECK_OK(mt_threadpool_new(&tp, 2)); /* an explicit count wins over the variable */
    MT_CHECK_EQ_INT(mt_threadpool_size(tp), 2);
    mt_threadpool_free(tp);
    unsetenv("MLTRAIN_NUM_THREADS");
}

static double process_cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

MT_TEST(threadpool_idle_costs_no_cpu)
{
    mt_threadpool *tp;
    MT_CHECK_OK(mt_threadpool_new(&tp, 4));
    atomic_llong s = 0;
    mt_threadpool_run(tp, 1000, 1, sum_fn, &s);
    /* Idle workers must sleep, not spin: 200 ms of idling costs (almost) no CPU time. */
    double c0 = process_cpu_seconds();
    struct timespec nap = {0, 200 * 1000 * 1000};
    nanosleep(&nap, NULL);
    double used = process_cpu_seconds() - c0;
    MT_CHECK(used < 0.03);
    /* and sleeping workers wake up for the next job */
    atomic_store(&s, 0);
    mt_threadpool_run(tp, 1000, 1, sum_fn, &s);
    MT_CHECK(atomic_load(&s) == 1000LL * 999 / 2);
    mt_threadpool_free(tp);
}

/* ================================================================ files */

static bool dir_has_temp_files(const char *dir)
{
    DIR *d = opendir(dir);
    MT_CHECK(d != NULL);
    bool found = false;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".tmp.")) found = true;
    closedir(d);
    return found;
}

MT_TEST(file_write_atomic_and_read_back)
{
    char path[600];
    snprintf(path, sizeof path, "%s/data.bin", mt_test_tmpdir());
    const char payload[] = "hello\0world";
    MT_CHECK_OK(mt_file_write_atomic(path, payload, sizeof payload, 0640));
    struct stat st;
    MT_CHECK(stat(path, &st) == 0);
    MT_CHECK_EQ_INT(st.st_mode & 0777, 0640);
    MT_CHECK_EQ_INT(st.st_size, sizeof payload);
    char *data;
    size_t len;
    MT_CHECK_OK(mt_file_read_all(path, &data, &len, 0));
    MT_CHECK_EQ_INT(len, sizeof payload);
    MT_CHECK(memcmp(data, payload, len) == 0 && data[len] == '\0');
    mt_free(data);
    /* Overwrite with new content and mode; empty content is fine too. */
    MT_CHECK_OK(mt_file_write_atomic(path, "x", 1, 0600));
    MT_CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600 && st.st_size == 1);
    MT_CHECK_OK(mt_file_write_atomic(path, "", 0, 0644));
    MT_CHECK_OK(mt_file_read_all(path, &data, &len, 0));
    MT_CHECK(len == 0 && data[0] == '\0');
    mt_free(data);
    /* A large file crosses many write() calls. */
    size_t big = 3 << 20;
    unsigned char *buf = mt_malloc(big);
    MT_CHECK(buf != NULL);
    for (size_t i = 0; i < big; i++)
        buf[i] = (unsigned char)(i * 131 + (i >> 9));
    MT_CHECK_OK(mt_file_write_atomic(path, buf, big, 0644));
    MT_CHECK_OK(mt_file_read_all(path, &data, &len, 0));
    MT_CHECK(len == big && memcmp(data, buf, big) == 0);
    mt_free(data);
    mt_free(buf);
    MT_CHECK(!dir_has_temp_files(mt_test_tmpdir()));
}

MT_TEST(file_write_atomic_failures_keep_old_content)
{
    char path[600], bad[700];
    snprintf(path, sizeof path, "%s/keep.txt", mt_test_tmpdir());
    MT_CHECK_OK(mt_file_write_atomic(path, "old content", 11, 0644));
    /* A directory component that is a regular file: fails cleanly, naming the path. */
    snprintf(bad, sizeof bad, "%s/sub/x.txt", path);
    MT_CHECK_ERR(mt_file_write_atomic(bad, "new", 3, 0644), MT_ERR_IO, bad);
    MT_CHECK(strstr(mt_last_error(), "Not a directory") != NULL);
    snprintf(bad, sizeof bad, "%s/missing_dir/x.txt", mt_test_tmpdir());
    MT_CHECK_ERR(mt_file_write_atomic(bad, "new", 3, 0644), MT_ERR_IO, "No such file");

    /* A full disk, simulated with a file-size limit (works as root too): the write fails
     * with EFBIG, the temporary is removed and the old file is untouched. */
    struct rlimit old, lim;
    MT_CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
    signal(SIGXFSZ, SIG_IGN);
    lim.rlim_cur = 4096;
    lim.rlim_max = old.rlim_max;
    MT_CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    size_t big = 100000;
    char *buf = mt_malloc(big);
    MT_CHECK(buf != NULL);
    memset(buf, 'n', big);
    mt_status st = mt_file_write_atomic(path, buf, big, 0644);
    setrlimit(RLIMIT_FSIZE, &old);
    mt_free(buf);
    MT_CHECK_EQ_INT(st, MT_ERR_IO);
    MT_CHECK(strstr(mt_last_error(), path) != NULL);
    MT_CHECK(strstr(mt_last_error(), "File too large") != NULL);
    char *data;
    size_t len;
    MT_CHECK_OK(mt_file_read_all(path, &data, &len, 0));
    MT_CHECK_STR_EQ(data, "old content");
    mt_free(data);
    MT_CHECK(!dir_has_temp_files(mt_test_tmpdir()));
    /* The target is a directory: rename fails, the directory and no temporary remain. */
    snprintf(bad, sizeof bad, "%s/adir", mt_test_tmpdir());
    MT_CHECK_OK(mt_mkdirs(bad, 0755));
    MT_CHECK_ERR(mt_file_write_atomic(bad, "x", 1, 0644), MT_ERR_IO, "rename");
    MT_CHECK(!dir_has_temp_files(mt_test_tmpdir()));
}

MT_TEST(file_read_all_errors)
{
    char path[600], *data = (char *)1;
    size_t len = 99;
    snprintf(path, sizeof path, "%s/none.txt", mt_test_tmpdir());
    char want[700];
    snprintf(want, sizeof want, "cannot open '%s': No such file or directory", path);
    MT_CHECK_ERR(mt_file_read_all(path, &data, &len, 0), MT_ERR_NOT_FOUND, want);
    MT_CHECK(data == NULL && len == 0);
    /* max_bytes refuses larger files, naming the file and its size */
    char text[100];
    memset(text, 'z', sizeof text);
    snprintf(path, sizeof path, "%s/hundred.txt", mt_test_tmpdir());
    MT_CHECK_OK(mt_file_write_atomic(path, text, 100, 0644));
    MT_CHECK_ERR(mt_file_read_all(path, &data, &len, 99), MT_ERR_RANGE, "is 100 bytes");
    MT_CHECK(strstr(mt_last_error(), path) != NULL && strstr(mt_last_error(), "99") != NULL);
    MT_CHECK_OK(mt_file_read_all(path, &data, &len, 100));
    MT_CHECK_EQ_INT(len, 100);
    mt_free(data);
    MT_CHECK_OK(mt_file_read_all(path, &data, NULL, 0)); /* len is optional */
    mt_free(data);
    MT_CHECK_ERR(mt_file_read_all(mt_test_tmpdir(), &data, &len, 0), MT_ERR_IO, "directory");
    /* Files whose size stat() does not know are read as a stream, with the same limit. */
    MT_CHECK_OK(mt_file_read_all("/proc/self/status", &data, &len, 0));
    MT_CHECK(len > 0 && strstr(data, "Pid:") != NULL && strlen(data) == len);
    mt_free(data);
    MT_CHECK_ERR(mt_file_read_all("/proc/self/status", &data, &len, 10), MT_ERR_RANGE,
                 "/proc/self/status");
    /* Out of memory while reading is reported, not fatal. */
    mt_alloc_fail_after(1);
    MT_CHECK_ERR(mt_file_read_all(path, &data, &len, 0), MT_ERR_NOMEM, path);
}

MT_TEST(file_mkdirs)
{
    char path[700];
    snprintf(path, sizeof path, "%s/a/b//c/", mt_test_tmpdir());
    MT_CHECK_OK(mt_mkdirs(path, 0755));
    struct stat st;
    MT_CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
    MT_CHECK_OK(mt_mkdirs(path, 0755)); /* existing is fine */
    snprintf(path, sizeof path, "%s/a/file", mt_test_tmpdir());
    MT_CHECK_OK(mt_file_write_atomic(path, "f", 1, 0644));
    char sub[800];
    snprintf(sub, sizeof sub, "%s/deeper", path);
    MT_CHECK_ERR(mt_mkdirs(sub, 0755), MT_ERR_IO, "not a directory");
    MT_CHECK_ERR(mt_mkdirs(path, 0755), MT_ERR_IO, path);
    MT_CHECK_ERR(mt_mkdirs("", 0755), MT_ERR_INVALID, "empty");
    /* relative paths work too */
    char cwd[600];
    MT_CHECK(getcwd(cwd, sizeof cwd) != NULL);
    MT_CHECK(chdir(mt_test_tmpdir()) == 0);
    MT_CHECK_OK(mt_mkdirs("rel/x", 0700));
    MT_CHECK(stat("rel/x", &st) == 0 && S_ISDIR(st.st_mode));
    MT_CHECK(chdir(cwd) == 0);
}

MT_TEST(now_seconds_monotonic)
{
    double t0 = mt_now_seconds();
    struct timespec nap = {0, 20 * 1000 * 1000};
    nanosleep(&nap, NULL);
    double t1 = mt_now_seconds();
    MT_CHECK(t1 - t0 >= 0.019 && t1 - t0 < 5.0);
}

/* The arena: alignment, small requests keep filling a chunk around big blocks, strings,
 * zeroing, failures reported as NULL, and free empties it. */
MT_TEST(arena_alignment_big_blocks_and_strings)
{
    mt_arena a = {0};
    char *s = mt_arena_strdup(&a, "mltrain");
    MT_CHECK(s && !strcmp(s, "mltrain"));
    MT_CHECK(mt_arena_strdup(&a, NULL) == NULL);
    char *t = mt_arena_strndup(&a, "abcdef", 3);
    MT_CHECK(t && !strcmp(t, "abc"));
    for (size_t al = 1; al <= 64; al *= 2) {
        void *p = mt_arena_alloc(&a, 3, al);
        MT_CHECK(p && (uintptr_t)p % al == 0);
    }
    unsigned char *z = mt_arena_calloc(&a, 40);
    MT_CHECK(z && (uintptr_t)z % 16 == 0);
    for (int i = 0; i < 40; i++) MT_CHECK(z[i] == 0);
    mt_arena_chunk *head = a.head;
    char *big = mt_arena_alloc(&a, 100000, 8); /* its own chunk, behind the current one */
    MT_CHECK(big != NULL);
    memset(big, 7, 100000);
    MT_CHECK(a.head == head);
    char *small = mt_arena_alloc(&a, 8, 8);
    MT_CHECK(small != NULL && a.head == head);
    MT_CHECK(a.used >= 100000 + 40 + 8 && a.reserved > a.used);
    MT_CHECK(!strcmp(s, "mltrain")); /* nothing moved */
    mt_alloc_fail_after(1);
    MT_CHECK(mt_arena_alloc(&a, 1000000, 8) == NULL);
    MT_CHECK_EQ_INT(mt_last_status(), MT_ERR_NOMEM);
    mt_arena_free(&a);
    MT_CHECK(a.head == NULL && a.used == 0 && a.reserved == 0);
    MT_CHECK(mt_arena_calloc(&a, 0) != NULL); /* usable again */
    mt_arena_free(&a);
}

/* The edit distance behind every "did you mean": insertions, deletions, substitutions and
 * adjacent transpositions cost one; case folding on request; the cap. */
MT_TEST(edit_distance_for_suggestions)
{
    MT_CHECK_EQ_INT(mt_edit_distance("learning_rate", "learning_rate", 3, false), 0);
    MT_CHECK_EQ_INT(mt_edit_distance("learnign_rate", "learning_rate", 3, false), 1); /* swap */
    MT_CHECK_EQ_INT(mt_edit_distance("nvs", "nvis", 3, false), 1);
    MT_CHECK_EQ_INT(mt_edit_distance("kitten", "sitting", 5, false), 3);
    MT_CHECK_EQ_INT(mt_edit_distance("MLP", "mlp", 3, false), 3);
    MT_CHECK_EQ_INT(mt_edit_distance("MLP", "mlp", 3, true), 0);
    MT_CHECK_EQ_INT(mt_edit_distance("abcdef", "uvwxyz", 2, false), 3); /* capped: cap + 1 */
    MT_CHECK_EQ_INT(mt_edit_distance("a", "abcdefgh", 3, false), 4);    /* lengths alone */
    MT_CHECK_EQ_INT(mt_edit_distance("", "", 0, false), 0);
    MT_CHECK_EQ_INT(mt_edit_distance("ab", "ba", 1, false), 1);
}
