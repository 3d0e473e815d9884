/*
 * kp_mex_cache.c -- the gateway's kp_context and its cache of formulas/plans.
 *
 * Why a cache keyed by text rather than handles owned by Octave objects:
 * parsing a formula and lowering a plan cost tens of microseconds to a few
 * milliseconds, a cache lookup well under one, and a key held in a function
 * handle needs no destructor (Octave's and MATLAB's differ in when they run).
 * Derivation paths ("g0/g1", "w", "l") name derived formulas: gradients,
 * with-indices and softmax-lse versions, built by kp.h from their parent.
 */
#include "kp_mex.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Entries kept before the cache is emptied (a session rarely uses more; a
 * loop building formulas from changing text must not grow without bound). */
#define KPM_MAX_ENTRIES 512
#define KPM_MAX_ALIASES 64

static kp_context *g_ctx;
static kpm_entry *g_entries;
static int g_count;
static int g_threads; /* 0: libkp's default (KP_NUM_THREADS, else all cores) */
static kp_engine g_engine = KP_ENGINE_CPU;

kp_context *kpm_context(void) {
    if (!g_ctx) {
        if (kp_context_new(&g_ctx) != KP_OK) g_ctx = NULL;
        else {
            if (g_threads > 0) kp_context_set_num_threads(g_ctx, g_threads);
            if (g_engine != KP_ENGINE_CPU && kp_context_set_engine(g_ctx, g_engine) != KP_OK) g_engine = KP_ENGINE_CPU;
        }
    }
    return g_ctx;
}

int kpm_threads(void) { return g_threads; }

kp_engine kpm_engine(void) { return g_engine; }

kp_status kpm_set_engine(kp_engine e) {
    kp_context *ctx = kpm_context();
    if (!ctx) return KP_ERR_OOM;
    kp_status st = kp_context_set_engine(ctx, e);
    if (st == KP_OK) g_engine = e;
    return st;
}

kp_status kpm_set_threads(int n) {
    kp_context *ctx = kpm_context();
    if (!ctx) return KP_ERR_OOM;
    kp_status st = kp_context_set_num_threads(ctx, n);
    if (st == KP_OK) g_threads = n;
    return st;
}

static void free_entries(void) {
    kpm_entry *e = g_entries;
    while (e) {
        kpm_entry *next = e->next;
        kp_plan_free(e->plan[0]);
        kp_plan_free(e->plan[1]);
        kp_formula_free(e->f);
        free(e->key);
        free(e);
        e = next;
    }
    g_entries = NULL;
    g_count = 0;
}

void kpm_cache_clear(void) {
    free_entries(); /* formulas keep a reference to the context: free them first */
    kp_context_free(g_ctx);
    g_ctx = NULL;
}

void kpm_cache_trim(void) {
    if (g_count > KPM_MAX_ENTRIES) free_entries();
}

static kpm_entry *lookup(const char *full) {
    for (kpm_entry *e = g_entries; e; e = e->next)
        if (strcmp(e->key, full) == 0) return e;
    return NULL;
}

static kp_status add_entry(const char *full, kp_formula *f, kpm_entry *parent, int grad_k, int user_nargs,
                           int hidden, kpm_entry **out) {
    kpm_entry *e = calloc(1, sizeof *e);
    char *key = malloc(strlen(full) + 1);
    if (!e || !key) {
        free(e);
        free(key);
        kp_formula_free(f);
        return KP_ERR_OOM;
    }
    strcpy(key, full);
    e->key = key;
    e->f = f;
    e->parent = parent;
    e->grad_k = grad_k;
    e->user_nargs = user_nargs;
    e->hidden = hidden;
    e->next = g_entries;
    g_entries = e;
    g_count++;
    *out = e;
    return KP_OK;
}

/* Parses "text\nalias\nalias..." (the base formula of a key). */
static kp_status parse_base(const char *key, kp_formula **out, char *msg, size_t msg_size) {
    size_t len = strlen(key);
    char *copy = malloc(len + 1);
    const char *aliases[KPM_MAX_ALIASES];
    size_t n = 0;
    if (!copy) return KP_ERR_OOM;
    memcpy(copy, key, len + 1);
    char *p = strchr(copy, '\n');
    while (p) {
        *p++ = '\0';
        if (n == KPM_MAX_ALIASES) {
            free(copy);
            snprintf(msg, msg_size, "at most %d aliases are supported", KPM_MAX_ALIASES);
            return KP_ERR_ARGUMENT;
        }
        aliases[n++] = p;
        p = strchr(p, '\n');
    }
    kp_status st = kp_formula_parse(kpm_context(), copy, aliases, n, out);
    free(copy);
    return st;
}

/* Applies one derivation step ("gK", "w", "l") to parent. */
static kp_status derive(kpm_entry *parent, const char *step, const char *full, kpm_entry **out, char *msg,
                        size_t msg_size) {
    kp_context *ctx = kpm_context();
    kp_formula *f = NULL;
    kp_status st;
    int nargs = kp_formula_num_args(parent->f);
    if (step[0] == 'g') {
        char *end;
        long k = strtol(step + 1, &end, 10);
        kp_var_category cat;
        int dim;
        if (parent->hidden || parent->user_nargs != nargs || kp_formula_sums_rows(parent->f)) {
            snprintf(msg, msg_size,
                     "the gradient of this gradient is not available: it takes forward results (LogSumExp, "
                     "SumSoftMaxWeight, Min/Max-type parents) or sums rows (a parameter gradient); second "
                     "derivatives work through Sum reductions of Vi/Vj variables");
            return KP_ERR_UNSUPPORTED;
        }
        if (*end || end == step + 1 || k < 0 || k >= nargs || kp_formula_arg(parent->f, (int)k, &cat, &dim) != KP_OK) {
            snprintf(msg, msg_size, "cannot differentiate with respect to input %ld: the formula uses inputs 1 to %d",
                     k + 1, nargs);
            return KP_ERR_ARGUMENT;
        }
        if ((st = kp_formula_grad(ctx, parent->f, (int)k, &f)) != KP_OK) return st;
        int ng = kp_formula_num_args(f);
        return add_entry(full, f, parent, (int)k, nargs + 1, ng > nargs + 1, out);
    }
    if (strcmp(step, "w") == 0) st = kp_formula_with_indices(ctx, parent->f, &f);
    else if (strcmp(step, "l") == 0) st = kp_formula_softmax_lse(ctx, parent->f, &f);
    else {
        snprintf(msg, msg_size, "unknown derivation step '%s'", step);
        return KP_ERR_ARGUMENT;
    }
    if (st != KP_OK) return st;
    return add_entry(full, f, parent, -1, parent->user_nargs, 0, out);
}

kp_status kpm_resolve(const char *key, const char *deriv, kpm_entry **out, char *msg, size_t msg_size) {
    msg[0] = '\0';
    if (!kpm_context()) {
        snprintf(msg, msg_size, "cannot create a libkp context (out of memory)");
        return KP_ERR_OOM;
    }
    size_t klen = strlen(key), dlen = strlen(deriv);
    char *full = malloc(klen + dlen + 2);
    if (!full) return KP_ERR_OOM;
    memcpy(full, key, klen);
    full[klen] = '\x01';
    memcpy(full + klen + 1, deriv, dlen + 1);
    kp_status st = KP_OK;
    kpm_entry *e = lookup(full);
    if (!e) {
        if (dlen == 0) {
            kp_formula *f = NULL;
            if ((st = parse_base(key, &f, msg, msg_size)) == KP_OK)
                st = add_entry(full, f, NULL, -1, kp_formula_num_args(f), 0, &e);
        } else {
            /* parent: the derivation without its last step */
            char *pd = malloc(dlen + 1);
            if (!pd) st = KP_ERR_OOM;
            else {
                memcpy(pd, deriv, dlen + 1);
                char *slash = strrchr(pd, '/');
                const char *step = slash ? slash + 1 : pd;
                if (slash) *slash = '\0';
                kpm_entry *parent = NULL;
                if ((st = kpm_resolve(key, slash ? pd : "", &parent, msg, msg_size)) == KP_OK)
                    st = derive(parent, deriv + (step - pd), full, &e, msg, msg_size);
                free(pd);
            }
        }
    }
    free(full);
    if (st == KP_OK) *out = e;
    return st;
}

kp_status kpm_plan(kpm_entry *e, kp_dtype dtype, kp_plan **out) {
    int slot = dtype == KP_FLOAT64;
    if (!e->plan[slot]) {
        kp_status st = kp_plan_new(kpm_context(), e->f, dtype, &e->plan[slot]);
        if (st != KP_OK) return st;
    }
    *out = e->plan[slot];
    return KP_OK;
}
