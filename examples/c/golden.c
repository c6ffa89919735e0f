/*
 * The C interface checked against the golden fixtures, bit for bit.
 *
 * `golden_data.h` is written by carma-ffi/tests/c_example.rs from
 * fixtures/golden/<dataset>.{carma,json}: the bundle's bytes, the rows'
 * inputs and, for each row, the outputs carma-core gave (the fixture's raw
 * proposal with the row's forbid set, and the refined answer of
 * `carma_request_default`). Floats travel as their IEEE-754 bits.
 *
 * Exit status 0 only if every output and every error code is as expected;
 * each mismatch is printed.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "carma.h"
#include "golden_data.h"

static int failures = 0;

#define CHECK(cond, ...)                                                                          \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            failures++;                                                                           \
            fprintf(stderr, "%s:%d: ", GOLDEN_DATASET, __LINE__);                                 \
            fprintf(stderr, __VA_ARGS__);                                                         \
            fputc('\n', stderr);                                                                  \
        }                                                                                         \
    } while (0)

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void check_result(size_t row, const char *what, const CarmaResult *got, const float *x_cf,
                         const struct golden_out *want) {
    CHECK(got->mask == want->mask, "row %zu %s: mask %llu, want %llu", row, what,
          (unsigned long long)got->mask, (unsigned long long)want->mask);
    CHECK(bits(got->prob_before) == want->prob_before, "row %zu %s: prob_before %08x, want %08x",
          row, what, bits(got->prob_before), want->prob_before);
    CHECK(bits(got->prob_after) == want->prob_after, "row %zu %s: prob_after %08x, want %08x", row,
          what, bits(got->prob_after), want->prob_after);
    CHECK(bits(got->cost) == want->cost, "row %zu %s: cost %08x, want %08x", row, what,
          bits(got->cost), want->cost);
    CHECK(got->accepted == want->accepted, "row %zu %s: accepted %d", row, what, got->accepted);
    CHECK(got->already_accepted == want->already_accepted, "row %zu %s: already_accepted %d", row,
          what, got->already_accepted);
    CHECK(got->status == want->status, "row %zu %s: status %d, want %d", row, what, got->status,
          want->status);
    for (size_t i = 0; i < GOLDEN_D; i++) {
        CHECK(bits(x_cf[i]) == want->x_cf[i], "row %zu %s: x_cf[%zu] %08x, want %08x", row, what, i,
              bits(x_cf[i]), want->x_cf[i]);
    }
}

static CarmaModel model;
static float scratch[GOLDEN_SCRATCH_LEN];

static void check_rows(void) {
    CarmaRequest plain;
    memset(&plain, 0, sizeof plain); /* zero: the raw proposal, no limits */
    for (size_t r = 0; r < GOLDEN_ROWS; r++) {
        float x[GOLDEN_D], x_cf[GOLDEN_D];
        for (size_t i = 0; i < GOLDEN_D; i++) {
            x[i] = from_bits(golden_rows[r].x[i]);
        }
        CarmaResult got;
        /* The raw proposal: a null request, or a zeroed one carrying the forbid set. */
        plain.forbid = golden_rows[r].forbid;
        const CarmaRequest *raw = golden_rows[r].forbid ? &plain : NULL;
        int32_t rc = carma_recommend(&model, x, GOLDEN_D, raw, x_cf, scratch, GOLDEN_SCRATCH_LEN, &got);
        CHECK(rc == CARMA_OK, "row %zu raw: %s", r, carma_error_message(rc));
        if (rc == CARMA_OK) {
            check_result(r, "raw", &got, x_cf, &golden_rows[r].raw);
        }
        CarmaRequest refined = carma_request_default();
        refined.forbid = golden_rows[r].forbid;
        rc = carma_recommend(&model, x, GOLDEN_D, &refined, x_cf, scratch, GOLDEN_SCRATCH_LEN, &got);
        CHECK(rc == CARMA_OK, "row %zu refined: %s", r, carma_error_message(rc));
        if (rc == CARMA_OK) {
            check_result(r, "refined", &got, x_cf, &golden_rows[r].refined);
            CHECK(bits(got.cost_unrefined) == golden_rows[r].refined.cost_unrefined,
                  "row %zu refined: cost_unrefined %08x", r, bits(got.cost_unrefined));
        }
    }
}

static void check_batch(void) {
    /* All rows in one call with the default request and no forbid set. */
    static float x[GOLDEN_ROWS * GOLDEN_D], x_cf[GOLDEN_ROWS * GOLDEN_D];
    static CarmaResult results[GOLDEN_ROWS];
    size_t rows = 0;
    size_t which[GOLDEN_ROWS];
    for (size_t r = 0; r < GOLDEN_ROWS; r++) {
        if (golden_rows[r].forbid == 0) {
            for (size_t i = 0; i < GOLDEN_D; i++) {
                x[rows * GOLDEN_D + i] = from_bits(golden_rows[r].x[i]);
            }
            which[rows++] = r;
        }
    }
    CarmaRequest request = carma_request_default();
    int32_t rc = carma_recommend_batch(&model, x, rows, GOLDEN_D, &request, x_cf, scratch,
                                       GOLDEN_SCRATCH_LEN, results);
    CHECK(rc == CARMA_OK, "batch: %s", carma_error_message(rc));
    for (size_t k = 0; rc == CARMA_OK && k < rows; k++) {
        check_result(which[k], "batch", &results[k], &x_cf[k * GOLDEN_D], &golden_rows[which[k]].refined);
    }
}

static void check_metadata(void) {
    size_t n = 0, s = 0;
    CHECK(carma_n_features(&model, &n) == CARMA_OK && n == GOLDEN_D, "n_features %zu", n);
    CHECK(carma_scratch_len(&model, &s) == CARMA_OK && s == GOLDEN_SCRATCH_LEN, "scratch_len %zu", s);
    for (size_t i = 0; i < GOLDEN_D; i++) {
        const uint8_t *name = NULL;
        size_t len = 0;
        CHECK(carma_feature_name(&model, i, &name, &len) == CARMA_OK, "feature_name %zu", i);
        CHECK(len == strlen(golden_names[i]) && memcmp(name, golden_names[i], len) == 0,
              "feature %zu is '%.*s', want '%s'", i, (int)len, (const char *)name, golden_names[i]);
        CarmaFeatureInfo info;
        CHECK(carma_feature_info(&model, i, &info) == CARMA_OK, "feature_info %zu", i);
        CHECK(info.actionable == (golden_actionable >> i & 1), "feature %zu actionable", i);
        CHECK(info.std > 0.0f && isfinite(info.mean), "feature %zu scaler", i);
    }
    const uint8_t *name;
    size_t len;
    CarmaFeatureInfo info;
    CHECK(carma_feature_name(&model, GOLDEN_D, &name, &len) == CARMA_ERR_INDEX, "name past the end");
    CHECK(carma_feature_info(&model, GOLDEN_D, &info) == CARMA_ERR_INDEX, "info past the end");
    CHECK(carma_feature_name(&model, 0, NULL, &len) == CARMA_ERR_NULL, "null name out");
    CHECK(carma_version() > 0 && carma_format_version() > 0, "versions");
}

/* Every failure is an error code, and none of them writes past what it was given. */
static void check_errors(void) {
    float x[GOLDEN_D], x_cf[GOLDEN_D];
    for (size_t i = 0; i < GOLDEN_D; i++) {
        x[i] = from_bits(golden_rows[0].x[i]);
    }
    CarmaResult r;
    int32_t rc;

    rc = carma_recommend(NULL, x, GOLDEN_D, NULL, x_cf, scratch, GOLDEN_SCRATCH_LEN, &r);
    CHECK(rc == CARMA_ERR_NULL, "null model: %d", rc);
    rc = carma_recommend(&model, NULL, GOLDEN_D, NULL, x_cf, scratch, GOLDEN_SCRATCH_LEN, &r);
    CHECK(rc == CARMA_ERR_NULL, "null x: %d", rc);
    rc = carma_recommend(&model, x, GOLDEN_D, NULL, x_cf, scratch, GOLDEN_SCRATCH_LEN, NULL);
    CHECK(rc == CARMA_ERR_NULL, "null result: %d", rc);
    rc = carma_recommend(&model, x, GOLDEN_D - 1, NULL, x_cf, scratch, GOLDEN_SCRATCH_LEN, &r);
    CHECK(rc == CARMA_ERR_INPUT, "wrong n: %d", rc);
    rc = carma_recommend(&model, x, GOLDEN_D, NULL, x_cf, scratch, GOLDEN_SCRATCH_LEN - 1, &r);
    CHECK(rc == CARMA_ERR_TOO_SMALL, "short scratch: %d", rc);

    float saved = x[GOLDEN_D - 1];
    x[GOLDEN_D - 1] = NAN;
    rc = carma_recommend(&model, x, GOLDEN_D, NULL, x_cf, scratch, GOLDEN_SCRATCH_LEN, &r);
    CHECK(rc == CARMA_ERR_INPUT, "NaN input: %d", rc);
    x[GOLDEN_D - 1] = INFINITY;
    rc = carma_recommend(&model, x, GOLDEN_D, NULL, x_cf, scratch, GOLDEN_SCRATCH_LEN, &r);
    CHECK(rc == CARMA_ERR_INPUT, "infinite input: %d", rc);
    x[GOLDEN_D - 1] = saved;

    CarmaRequest bad = carma_request_default();
    bad.min_prob = 2.0f;
    rc = carma_recommend(&model, x, GOLDEN_D, &bad, x_cf, scratch, GOLDEN_SCRATCH_LEN, &r);
    CHECK(rc == CARMA_ERR_INPUT, "min_prob 2: %d", rc);
    bad = carma_request_default();
    float lo[GOLDEN_D], hi[GOLDEN_D];
    for (size_t i = 0; i < GOLDEN_D; i++) {
        lo[i] = 1.0f;
        hi[i] = 0.0f; /* min above max */
    }
    bad.min = lo;
    bad.max = hi;
    rc = carma_recommend(&model, x, GOLDEN_D, &bad, x_cf, scratch, GOLDEN_SCRATCH_LEN, &r);
    CHECK(rc == CARMA_ERR_INPUT, "min above max: %d", rc);

    /* A model that was never opened, or whose tag was overwritten. */
    static CarmaModel zeroed;
    size_t n;
    CHECK(carma_n_features(&zeroed, &n) == CARMA_ERR_NOT_OPEN, "zeroed model");
    static CarmaModel garbage;
    memset(&garbage, 0xA5, sizeof garbage);
    CHECK(carma_n_features(&garbage, &n) == CARMA_ERR_NOT_OPEN, "garbage model");
    CHECK(carma_n_features(&model, NULL) == CARMA_ERR_NULL, "null out");

    /* Bytes that are not the bundle: truncated, one bit flipped, empty, null. */
    static uint8_t copy[sizeof golden_bundle];
    static CarmaModel other;
    memcpy(copy, golden_bundle, sizeof copy);
    for (size_t cut = 0; cut < sizeof copy; cut += 1 + sizeof copy / 97) {
        rc = carma_open(copy, cut, &other);
        CHECK(rc == CARMA_ERR_FORMAT, "truncated to %zu: %d", cut, rc);
        CHECK(carma_n_features(&other, &n) == CARMA_ERR_NOT_OPEN, "failed open left a model");
    }
    for (size_t at = 0; at < sizeof copy; at += 1 + sizeof copy / 89) {
        copy[at] ^= 0x10;
        rc = carma_open(copy, sizeof copy, &other);
        CHECK(rc == CARMA_ERR_FORMAT || rc == CARMA_ERR_INVALID_BUNDLE, "bit flip at %zu: %d", at, rc);
        copy[at] ^= 0x10;
    }
    CHECK(carma_open(NULL, 10, &other) == CARMA_ERR_NULL, "null bytes");
    CHECK(carma_open(golden_bundle, sizeof golden_bundle, NULL) == CARMA_ERR_NULL, "null model out");

    for (int32_t code = -12; code <= 1; code++) {
        const char *m = carma_error_message(code);
        CHECK(m != NULL && m[0] != '\0', "message of %d", code);
    }
}

int main(void) {
    int32_t rc = carma_open(golden_bundle, sizeof golden_bundle, &model);
    if (rc != CARMA_OK) {
        fprintf(stderr, "%s: open: %s\n", GOLDEN_DATASET, carma_error_message(rc));
        return 1;
    }
    check_metadata();
    check_rows();
    check_batch();
    check_errors();
    if (failures) {
        fprintf(stderr, "%s: %d mismatches\n", GOLDEN_DATASET, failures);
        return 1;
    }
    printf("%s: %zu rows bit for bit (raw, refined, batch), error paths as documented\n",
           GOLDEN_DATASET, (size_t)GOLDEN_ROWS);
    return 0;
}
