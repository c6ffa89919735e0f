/*
 * carma from C: open a model file, recommend for one person, print the advice.
 *
 *   cargo build -p carma-ffi --profile ffi --no-default-features
 *   cc -O2 -Icarma-ffi/include examples/c/demo.c target/ffi/libcarma_ffi.a -o carma-demo
 *   ./carma-demo fixtures/golden/loan.carma 0 10.2 -0.1 2.1 8.2 2.9 -1.1
 *
 * The model's bytes and every buffer belong to this program; the library
 * allocates nothing. Exit status: 0 advice printed (or already accepted),
 * 1 no accepted recommendation, 2 usage or input error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "carma.h"

#define MAX_FEATURES 64

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    unsigned char *buf = NULL;
    size_t cap = 0;
    *len = 0;
    for (;;) {
        if (*len == cap) {
            cap = cap ? 2 * cap : 4096;
            unsigned char *grown = realloc(buf, cap);
            if (!grown) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = grown;
        }
        size_t got = fread(buf + *len, 1, cap - *len, f);
        *len += got;
        if (got == 0) {
            break;
        }
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        return NULL;
    }
    return buf;
}

static void print_name(const CarmaModel *model, size_t i) {
    const uint8_t *name;
    size_t len;
    if (carma_feature_name(model, i, &name, &len) == CARMA_OK) {
        printf("%.*s", (int)len, (const char *)name);
    } else {
        printf("feature %zu", i);
    }
}

/* A value as a person reads it: a categorical feature by its level's name. */
static void print_value(const CarmaModel *model, size_t i, float v) {
    CarmaFeatureInfo info;
    const uint8_t *name;
    size_t len;
    if (carma_feature_info(model, i, &info) == CARMA_OK && info.kind == CARMA_KIND_CATEGORICAL &&
        v >= 0.0f && carma_level_name(model, i, (size_t)v, &name, &len) == CARMA_OK) {
        printf("%.*s", (int)len, (const char *)name);
    } else {
        printf("%g", v);
    }
}

/* " from <x> to <x_cf>" and the line's end. */
static void print_move(const CarmaModel *model, size_t i, float from, float to) {
    printf(" from ");
    print_value(model, i, from);
    printf(" to ");
    print_value(model, i, to);
    printf("\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.carma VALUE...\n", argv[0]);
        return 2;
    }
    size_t len;
    unsigned char *bytes = read_file(argv[1], &len);
    if (!bytes) {
        perror(argv[1]);
        return 2;
    }
    static CarmaModel model; /* 1 KiB; it borrows `bytes` */
    int32_t rc = carma_open(bytes, len, &model);
    if (rc != CARMA_OK) {
        fprintf(stderr, "%s: %s\n", argv[1], carma_error_message(rc));
        free(bytes);
        return 2;
    }
    size_t d, scratch_len;
    carma_n_features(&model, &d);
    carma_scratch_len(&model, &scratch_len);
    if (d > MAX_FEATURES || (size_t)(argc - 2) != d) {
        fprintf(stderr, "%s has %zu features:", argv[1], d);
        for (size_t i = 0; i < d; i++) {
            fputc(' ', stderr);
            const uint8_t *name;
            size_t name_len;
            carma_feature_name(&model, i, &name, &name_len);
            fprintf(stderr, "%.*s", (int)name_len, (const char *)name);
        }
        fprintf(stderr, "; give one value for each\n");
        free(bytes);
        return 2;
    }
    float x[MAX_FEATURES], x_cf[MAX_FEATURES];
    for (size_t i = 0; i < d; i++) {
        char *end;
        x[i] = strtof(argv[2 + i], &end);
        if (*argv[2 + i] == '\0' || *end != '\0') {
            fprintf(stderr, "not a number: '%s'\n", argv[2 + i]);
            free(bytes);
            return 2;
        }
    }
    float *scratch = malloc(scratch_len * sizeof(float));
    if (!scratch) {
        free(bytes);
        return 2;
    }

    CarmaRequest request = carma_request_default(); /* refined, no limits */
    CarmaResult r;
    rc = carma_recommend(&model, x, d, &request, x_cf, scratch, scratch_len, &r);
    if (rc != CARMA_OK) {
        fprintf(stderr, "recommend: %s\n", carma_error_message(rc));
        free(scratch);
        free(bytes);
        return 2;
    }

    printf("probability of acceptance: %.3f\n", r.prob_before);
    int code = 0;
    switch (r.status) {
    case CARMA_STATUS_ALREADY_ACCEPTED:
        printf("already accepted: nothing to change\n");
        break;
    case CARMA_STATUS_RECOMMENDED:
        printf("recommended (cost %.4f, probability after %.3f):\n", r.cost, r.prob_after);
        for (size_t i = 0; i < d; i++) {
            if (r.mask >> i & 1) {
                printf("  change ");
                print_name(&model, i);
                print_move(&model, i, x[i], x_cf[i]);
            }
        }
        for (size_t i = 0; i < d; i++) {
            if (!(r.mask >> i & 1) && x_cf[i] != x[i]) {
                printf("  as a consequence ");
                print_name(&model, i);
                printf(" goes");
                print_move(&model, i, x[i], x_cf[i]);
            }
        }
        break;
    default:
        printf("no accepted recommendation (%s)\n",
               r.status == CARMA_STATUS_NONE_WITHIN_LIMITS ? "none within the limits"
                                                           : "the networks' proposal is not accepted");
        code = 1;
    }
    free(scratch);
    free(bytes);
    return code;
}
