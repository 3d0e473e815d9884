/*
 * exec.c — kp_mpi_exec: the two layouts of kp_mpi.h over kp.h's partial
 * reduction states. Every step that can fail on one rank ends in an agreement
 * (agree.c), so that all ranks take the same path.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "mpi/mpi_internal.h"

/* A state buffer of the plan for the rank's rows. */
typedef struct state_buf {
    kp_state_info info;
    void *data;
} state_buf;

static kp_status state_new(const kp_mpi_call *c, const kp_array *args, int64_t row_offset, state_buf *s) {
    s->data = NULL;
    kp_status st = kp_plan_state_info(c->plan, args, c->nargs, &c->opt, &s->info);
    if (st != KP_OK) return st;
    if (s->info.bytes > (size_t)INT_MAX)
        return kp__mpi_fail(c, KP_ERR_TOO_LARGE, "a state of %zu bytes exceeds one MPI message (2^31 - 1 bytes)",
                            s->info.bytes);
    s->info.row_offset = row_offset;
    s->data = malloc(s->info.bytes);
    if (!s->data) return kp__mpi_fail(c, KP_ERR_OOM, "out of memory for a state of %zu bytes", s->info.bytes);
    return kp_plan_state_init(c->plan, &s->info, s->data);
}

/* Exclusive prefix sum and total of every rank's n (collective). */
static kp_status offsets(const kp_mpi_call *c, int64_t n, int64_t *all, int64_t *mine) {
    kp_status st = kp__mpi_check(c, MPI_Allgather(&n, 1, MPI_INT64_T, all, 1, MPI_INT64_T, c->comm), "MPI_Allgather");
    *mine = 0;
    for (int r = 0; r < c->rank; r++) *mine += all[r];
    return st;
}

/* Points of a category on this rank: its variables' rows, else the option
 * that gives them (nx, ny), else 0. */
static int64_t points_of(const kp_mpi_call *c, kp_var_category cat) {
    int64_t n = kp__mpi_local_points(c, cat), opt = cat == KP_VAR_I ? c->opt.nx : c->opt.ny;
    return n >= 0 ? n : opt > 0 ? opt : 0;
}

/* Global index of this rank's first i point and their total (collective;
 * agreed on every rank). */
static kp_status first_i_point(const kp_mpi_call *c, int64_t *first, int64_t *total) {
    int64_t *counts = malloc((size_t)c->size * sizeof *counts);
    kp_status st = kp__mpi_agree(c, counts ? KP_OK : kp__mpi_fail(c, KP_ERR_OOM, "out of memory"));
    if (st == KP_OK) st = kp__mpi_agree(c, offsets(c, points_of(c, KP_VAR_I), counts, first));
    *total = 0;
    for (int r = 0; st == KP_OK && r < c->size; r++) *total += counts[r];
    free(counts);
    return st;
}

/* The state, the whole problem's ranges checked, a part's options ready
 * (collective: one agreement for the three). */
static kp_status state_and_ranges(const kp_mpi_call *c, int64_t row_offset, int64_t nrows, int64_t ncols, state_buf *s,
                                  kp_mpi_part *part, kp_mpi_geometry *g) {
    kp_status st = state_new(c, c->args, row_offset, s);
    if (st == KP_OK) st = kp__mpi_part_alloc(c, part);
    *g = (kp_mpi_geometry){s->info.nbatch, nrows, ncols};
    if (st == KP_OK) st = kp__mpi_ranges_check(c, g);
    return kp__mpi_agree(c, st);
}

/* Merges every rank's state into rank 0's in rank order over a fixed binary
 * tree (rank r takes r + s's at step s), then broadcasts it. */
static kp_status tree_merge(const kp_mpi_call *c, state_buf *s) {
    kp_status st = KP_OK;
    void *tmp = malloc(s->info.bytes);
    if (!tmp) st = kp__mpi_fail(c, KP_ERR_OOM, "out of memory for a state of %zu bytes", s->info.bytes);
    if ((st = kp__mpi_agree(c, st)) != KP_OK) return free(tmp), st;
    int n = (int)s->info.bytes;
    for (int step = 1; step < c->size && st == KP_OK; step *= 2) {
        if (c->rank % (2 * step) == 0 && c->rank + step < c->size) {
            st = kp__mpi_check(c, MPI_Recv(tmp, n, MPI_BYTE, c->rank + step, 0, c->comm, MPI_STATUS_IGNORE), "MPI_Recv");
            if (st == KP_OK) st = kp_plan_state_merge(c->plan, s->data, tmp, s->info.bytes);
        } else if (c->rank % (2 * step) == step) {
            st = kp__mpi_check(c, MPI_Send(s->data, n, MPI_BYTE, c->rank - step, 0, c->comm), "MPI_Send");
            break;
        }
    }
    free(tmp);
    if ((st = kp__mpi_agree(c, st)) != KP_OK) return st;
    return kp__mpi_agree(c, kp__mpi_check(c, MPI_Bcast(s->data, n, MPI_BYTE, 0, c->comm), "MPI_Bcast"));
}

/* KP_MPI_ROWS, axis 1: every rank reduces its own rows over all j points;
 * through a state only so that IndexI() reads global row indices (one fold
 * from the identity is kp_plan_exec's computation, bit for bit). */
static kp_status rows_row_side(const kp_mpi_call *c, kp_array *out, kp_array *out_index) {
    int64_t first = 0, n = 0, m = points_of(c, KP_VAR_J);
    state_buf s = {0};
    kp_mpi_part part = {0};
    kp_mpi_geometry g;
    kp_status st = first_i_point(c, &first, &n);
    if (st == KP_OK) st = state_and_ranges(c, first, n, m, &s, &part, &g);
    if (st == KP_OK) {
        const kp_exec_options *o = kp__mpi_part(c, &part, &g, first, points_of(c, KP_VAR_I), 0, m);
        st = kp_plan_exec_partial(c->plan, c->args, c->nargs, 0, s.data, s.info.bytes, o);
        if (st == KP_OK)
            st = kp_plan_state_finalize(c->plan, c->args, c->nargs, s.data, s.info.bytes, out, out_index, &c->opt);
        st = kp__mpi_agree(c, st);
    }
    kp__mpi_part_free(&part);
    free(s.data);
    return st;
}

/* KP_MPI_ROWS, axis 0: every rank folds its i points into all M rows. */
static kp_status rows_column_side(const kp_mpi_call *c, kp_array *out, kp_array *out_index) {
    int64_t first = 0, n = 0, m = points_of(c, KP_VAR_J);
    state_buf s = {0};
    kp_mpi_part part = {0};
    kp_mpi_geometry g;
    kp_status st = first_i_point(c, &first, &n);
    if (st == KP_OK) st = state_and_ranges(c, 0, m, n, &s, &part, &g);
    if (st == KP_OK) {
        const kp_exec_options *o = kp__mpi_part(c, &part, &g, 0, m, first, points_of(c, KP_VAR_I));
        st = kp__mpi_agree(c, kp_plan_exec_partial(c->plan, c->args, c->nargs, first, s.data, s.info.bytes, o));
    }
    if (st == KP_OK) st = tree_merge(c, &s);
    if (st == KP_OK)
        st = kp__mpi_agree(c, kp_plan_state_finalize(c->plan, c->args, c->nargs, s.data, s.info.bytes, out, out_index,
                                                     &c->opt));
    kp__mpi_part_free(&part);
    free(s.data);
    return st;
}

/* The ring's buffers: the block being folded and the one arriving. */
typedef struct ring {
    int64_t *counts, first_row, nrows, total_rows, total_red;
    int64_t *starts; /* global index of each rank's first reduced point */
    kp_mpi_block cur, next;
    kp_array *args;
} ring;

static void ring_free(ring *R) {
    free(R->counts);
    free(R->starts);
    free(R->cur.data);
    free(R->next.data);
    free(R->args);
}

static kp_status ring_alloc(const kp_mpi_call *c, ring *R) {
    memset(R, 0, sizeof *R);
    R->counts = malloc((size_t)c->size * sizeof(int64_t));
    R->starts = malloc((size_t)c->size * sizeof(int64_t));
    R->args = malloc((c->nargs ? c->nargs : 1) * sizeof(kp_array));
    if (!R->counts || !R->starts || !R->args) return kp__mpi_fail(c, KP_ERR_OOM, "out of memory");
    return KP_OK;
}

/* Block sizes of every rank, buffers for the largest, the own block packed. */
static kp_status ring_setup(const kp_mpi_call *c, ring *R) {
    int64_t n = kp__mpi_local_points(c, c->red_cat), rows = kp__mpi_local_points(c, c->red_cat == KP_VAR_J ? KP_VAR_I : KP_VAR_J);
    int64_t mine = 0, *rowcounts = malloc((size_t)c->size * sizeof(int64_t));
    if (!rowcounts) return kp__mpi_fail(c, KP_ERR_OOM, "out of memory");
    kp_status st = offsets(c, n < 0 ? 0 : n, R->counts, &mine);
    if (st == KP_OK) st = offsets(c, rows < 0 ? 0 : rows, rowcounts, &R->first_row);
    R->nrows = rows < 0 ? 0 : rows;
    for (int r = 0; st == KP_OK && r < c->size; r++) {
        R->total_rows += rowcounts[r];
        R->total_red += R->counts[r];
    }
    free(rowcounts);
    if (st != KP_OK) return st;
    if (n < 0)
        return kp__mpi_fail(c, KP_ERR_ARGUMENT, "the ring layout needs a %s variable to pass around",
                            c->red_cat == KP_VAR_J ? "Vj" : "Vi");
    size_t cap = 0;
    for (int r = 0; r < c->size; r++) {
        R->starts[r] = r ? R->starts[r - 1] + R->counts[r - 1] : 0;
        size_t b = kp__mpi_block_bytes(c, R->counts[r]);
        cap = b > cap ? b : cap;
    }
    if (cap > (size_t)INT_MAX)
        return kp__mpi_fail(c, KP_ERR_TOO_LARGE, "a block of %zu bytes exceeds one MPI message: use more ranks", cap);
    R->cur.data = malloc(cap + 8);
    R->next.data = malloc(cap + 8);
    if (!R->cur.data || !R->next.data) return kp__mpi_fail(c, KP_ERR_OOM, "out of memory for ring blocks of %zu bytes", cap);
    R->cur.capacity = R->next.capacity = cap;
    R->cur.npoints = n;
    kp__mpi_block_pack(c, &R->cur);
    return KP_OK;
}

/* P steps: at step s the rank holds rank (rank + s)'s block, receives the
 * next from rank + 1 and sends its own to rank - 1 while folding it. Blocks
 * of ranks >= rank fold into tail, the others into head: each state sees its
 * blocks in increasing global order. A failed fold stops folding, never the
 * ring, so every rank reaches the agreement. */
static kp_status ring_walk(const kp_mpi_call *c, ring *R, state_buf *head, state_buf *tail, kp_mpi_part *part,
                           const kp_mpi_geometry *g) {
    kp_status st = KP_OK;
    int left = (c->rank - 1 + c->size) % c->size, right = (c->rank + 1) % c->size;
    for (int s = 0; s < c->size; s++) {
        int owner = (c->rank + s) % c->size, incoming = (c->rank + s + 1) % c->size;
        MPI_Request req[2];
        int nreq = 0;
        if (s + 1 < c->size) {
            R->next.npoints = R->counts[incoming];
            R->next.bytes = kp__mpi_block_bytes(c, R->next.npoints);
            int rc = MPI_Irecv(R->next.data, (int)R->next.bytes, MPI_BYTE, right, 1, c->comm, &req[nreq++]);
            if (rc == MPI_SUCCESS) rc = MPI_Isend(R->cur.data, (int)R->cur.bytes, MPI_BYTE, left, 1, c->comm, &req[nreq++]);
            if (st == KP_OK) st = kp__mpi_check(c, rc, "MPI_Irecv/MPI_Isend");
        }
        if (st == KP_OK) {
            state_buf *into = owner >= c->rank ? tail : head;
            kp__mpi_block_args(c, &R->cur, R->args);
            const kp_exec_options *o =
                kp__mpi_part(c, part, g, R->first_row, R->nrows, R->starts[owner], R->counts[owner]);
            st = kp_plan_exec_partial(c->plan, R->args, c->nargs, R->starts[owner], into->data, into->info.bytes, o);
        }
        if (nreq) {
            int rc = MPI_Waitall(nreq, req, MPI_STATUSES_IGNORE);
            if (st == KP_OK) st = kp__mpi_check(c, rc, "MPI_Waitall");
            kp_mpi_block t = R->cur;
            R->cur = R->next;
            R->next = t;
        }
    }
    return st;
}

/* KP_MPI_RING: both axes split, the reduced one passed around. */
static kp_status ring_exec(const kp_mpi_call *c, kp_array *out, kp_array *out_index) {
    ring R;
    state_buf head = {0}, tail = {0};
    kp_mpi_part part = {0};
    kp_mpi_geometry g;
    kp_status st = kp__mpi_agree(c, ring_alloc(c, &R));
    if (st == KP_OK) st = kp__mpi_agree(c, ring_setup(c, &R));
    if (st == KP_OK) st = kp__mpi_agree(c, state_new(c, c->args, R.first_row, &head));
    if (st == KP_OK) st = state_and_ranges(c, R.first_row, R.total_rows, R.total_red, &tail, &part, &g);
    if (st == KP_OK) st = kp__mpi_agree(c, ring_walk(c, &R, &head, &tail, &part, &g));
    if (st == KP_OK) { /* every rank, or none (agreed): a failure is not agreed, and prefixed, twice */
        if (c->rank > 0 && R.starts[c->rank] > 0) { /* head holds points: it comes first */
            st = kp_plan_state_merge(c->plan, head.data, tail.data, head.info.bytes);
            void *t = tail.data;
            tail.data = head.data;
            head.data = t;
        }
        if (st == KP_OK)
            st = kp_plan_state_finalize(c->plan, c->args, c->nargs, tail.data, tail.info.bytes, out, out_index,
                                        &c->opt);
        st = kp__mpi_agree(c, st);
    }
    kp__mpi_part_free(&part);
    free(head.data);
    free(tail.data);
    ring_free(&R);
    return st;
}

kp_status kp_mpi_exec(kp_plan *plan, MPI_Comm comm, kp_mpi_layout layout, const kp_array *args, size_t n_args,
                      kp_array *out, kp_array *out_index, const kp_exec_options *options) {
    kp_mpi_call c;
    memset(&c, 0, sizeof c);
    c.plan = plan;
    c.ctx = kp_plan_context(plan);
    c.comm = comm;
    c.layout = layout;
    c.axis = kp_plan_axis(plan);
    c.red_cat = c.axis == 0 ? KP_VAR_I : KP_VAR_J;
    c.args = args;
    c.nargs = n_args;
    c.options = options;
    if (MPI_Comm_rank(comm, &c.rank) != MPI_SUCCESS || MPI_Comm_size(comm, &c.size) != MPI_SUCCESS)
        return c.ctx ? kp_context_set_error(c.ctx, KP_ERR_ARGUMENT, "comm is not a valid communicator")
                     : KP_ERR_ARGUMENT;
    kp_status st = KP_OK;
    if (!plan) st = KP_ERR_NULL;
    else if (layout != KP_MPI_ROWS && layout != KP_MPI_RING)
        st = kp__mpi_fail(&c, KP_ERR_ARGUMENT, "unknown layout %d", (int)layout);
    else if (c.axis < 0)
        st = kp__mpi_fail(&c, KP_ERR_ARGUMENT, "a joint plan: run its formulas' own plans");
    else if (n_args && !args)
        st = kp__mpi_fail(&c, KP_ERR_NULL, "args is NULL");
    else if (n_args != (size_t)kp_plan_num_args(plan))
        st = kp__mpi_fail(&c, KP_ERR_ARGUMENT, "the formula takes %d arguments, got %zu", kp_plan_num_args(plan),
                          n_args);
    else
        st = kp__mpi_read_options(&c);
    if ((st = kp__mpi_agree(&c, st)) != KP_OK) return st;
    if ((st = kp__mpi_agree(&c, kp__mpi_same_shapes(&c))) != KP_OK) return st;
    if (layout == KP_MPI_ROWS && c.axis == 1) return rows_row_side(&c, out, out_index);
    if (layout == KP_MPI_ROWS) return rows_column_side(&c, out, out_index);
    return ring_exec(&c, out, out_index);
}
