/*
 * pb_encode.h - hand-encoded protobuf messages for the tests of the protobuf readers
 * (test_onnx.c, test_spm_model.c): varints, keys and fields of each wire type appended to
 * a fixed buffer, so that a test can write exactly the bytes it means, malformed ones
 * included. Include after <cmocka.h>.
 */
#ifndef BITNET_TEST_PB_ENCODE_H
#define BITNET_TEST_PB_ENCODE_H

#include <stdint.h>
#include <string.h>

typedef struct pb {
    uint8_t p[8192];
    size_t n;
} pb;

static inline void pb_raw(pb *b, const void *s, size_t n)
{
    assert_true(b->n + n <= sizeof b->p);
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static inline void pb_varint(pb *b, uint64_t v)
{
    do {
        uint8_t c = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) c |= 0x80;
        pb_raw(b, &c, 1);
    } while (v);
}

/* wire types: 0 varint, 1 64-bit, 2 length-delimited, 5 32-bit */
static inline void pb_key(pb *b, unsigned field, unsigned wire)
{
    pb_varint(b, (uint64_t)field << 3 | wire);
}

static inline void pb_int(pb *b, unsigned field, int64_t v)
{
    pb_key(b, field, 0);
    pb_varint(b, (uint64_t)v);
}

static inline void pb_bytes(pb *b, unsigned field, const void *s, size_t n)
{
    pb_key(b, field, 2);
    pb_varint(b, n);
    pb_raw(b, s, n);
}

static inline void pb_str(pb *b, unsigned field, const char *s)
{
    pb_bytes(b, field, s, strlen(s));
}

static inline void pb_msg(pb *b, unsigned field, const pb *m)
{
    pb_bytes(b, field, m->p, m->n);
}

static inline void pb_float(pb *b, unsigned field, float f)
{
    pb_key(b, field, 5);
    pb_raw(b, &f, 4);
}

#endif
