/*
 * print.h — the canonical text of formula nodes.
 *
 * The text writes the DAG as a tree, so its length can grow exponentially
 * with the depth of shared subexpressions (a third derivative of nested
 * Normalize: 380 nodes, 29 MB of text). Each node therefore carries the length
 * of its text (kp_node.text_len, set once when the node is interned, from its
 * children's), and the printer never walks a subtree it cannot write into the
 * buffer: measuring a text is O(1) and printing into a buffer of B bytes costs
 * O(B), whatever the text's length.
 */
#ifndef KP_FORMULA_PRINT_H
#define KP_FORMULA_PRINT_H

#include <stddef.h>

#include "formula/node.h"

typedef struct kp_text_sink {
    char *buf;  /* NULL when size is 0 */
    size_t size;
    size_t len; /* length of the whole text so far (saturates at SIZE_MAX) */
} kp_text_sink;

__attribute__((format(printf, 2, 3))) void kp__text_put(kp_text_sink *s, const char *fmt, ...);
/* Appends n's text: the part that fits in the buffer is written, the rest only counted. */
void kp__print_node(kp_text_sink *s, const kp_node *n);
/* The length of n's text, from its fields and its children's text_len. */
size_t kp__node_text_len(const kp_node *n);

#endif
