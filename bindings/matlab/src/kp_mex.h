/*
 * kp_mex.h -- shared pieces of the libkp MEX gateway (Octave and MATLAB).
 *
 * The gateway keeps one kp_context for the life of the MEX file and a cache
 * of parsed formulas and their plans, keyed by the formula text, its aliases
 * and a derivation path (gradients, with-indices versions, ...). Handles on the
 * Octave side are plain function handles holding that key, so they can be
 * saved, copied and dropped without any lifetime protocol: the cache is bounded
 * and freed by mexAtExit.
 */
#ifndef KP_MEX_H
#define KP_MEX_H

#include <stddef.h>

#include "kp.h"

/* One cache entry: a formula (base or derived) and its plans per dtype. */
typedef struct kpm_entry {
    char *key;                /* text "\n" alias... "\x01" derivation */
    kp_formula *f;
    kp_plan *plan[2];         /* [0]: KP_FLOAT32, [1]: KP_FLOAT64; made on first use */
    struct kpm_entry *parent; /* the formula it derives from (NULL for a base) */
    int grad_k;               /* position differentiated for a gradient entry, else -1 */
    int user_nargs;           /* arrays the caller passes: nargs, or the parent's + 1 (E) */
    int hidden;               /* 1: a gradient that needs forward results the gateway computes */
    struct kpm_entry *next;
} kpm_entry;

/* The gateway's context (created on first use). */
kp_context *kpm_context(void);
/* Thread count of later calls (0: libkp's default); kept across 'clear'. */
int kpm_threads(void);
kp_status kpm_set_threads(int n);
/* Engine of later calls (KP_ENGINE_CPU by default); kept across 'clear'. */
kp_engine kpm_engine(void);
kp_status kpm_set_engine(kp_engine e);
/* Frees every entry and the context (mexAtExit and 'clear'). */
void kpm_cache_clear(void);
/* Frees the entries if more than a bound are cached; only called between
 * calls, never while entries are in use. */
void kpm_cache_trim(void);
/* The entry for (key, deriv), parsing and deriving what is missing. On failure
 * returns the status, with the message in the context (or in msg for errors
 * of the gateway itself, msg non-empty). */
kp_status kpm_resolve(const char *key, const char *deriv, kpm_entry **out, char *msg, size_t msg_size);
/* The entry's plan for dtype (KP_FLOAT32 or KP_FLOAT64), made on first use. */
kp_status kpm_plan(kpm_entry *e, kp_dtype dtype, kp_plan **out);

#endif
