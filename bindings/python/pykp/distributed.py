"""
pykp.distributed -- libkp reductions over the processes of an MPI communicator
(mpi4py), built on kp.h's partial reduction states through pykp's ctypes layer.

Points are numbered globally in rank order (rank 0's first). Two layouts, as in
libkp_mpi (include/kp_mpi.h, docs/distributed.md):

``layout="rows"``
    i points (``Vi``) split over the ranks, j points (``Vj``) replicated: every
    rank passes all of them. Axis 1 (reduce over j): each rank gets the rows of
    its own i points, bit-identical to one process. Axis 0 (reduce over i):
    every rank folds its i points into the states of all M rows, the states are
    merged in rank order over a fixed tree, and every rank gets all M rows.
``layout="ring"``
    i and j points both split. Each rank gets the rows of its own points of the
    output axis; the reduced axis' variables travel around the ring in blocks
    (nonblocking sends and receives: the next block travels while the local
    engine folds the current one), so no rank ever holds all of them.

Min/Max/ArgMin/.../KMin-type reductions give one process's values and indices
exactly in every layout; Sum, LogSumExp and SumSoftMaxWeight merge their states
in a fixed order (the same bits for the same split, within 1e-6 of the largest output in
float32 and 1e-13 in float64 of one process).

Autograd (torch tensors; Sum, LogSumExp, SumSoftMaxWeight, Min, Max, KMin, to
any order; indices, as for ArgMin or Min_ArgMin, are not differentiated, nor
are the parameter gradients of Min, Max and KMin, nor, a second time, LogSumExp
and SumSoftMaxWeight with replicated outputs): the loss is taken as the sum of
every rank's loss. The gradient of a rank's own points is computed where they
live; the gradient of a replicated variable (``Vj`` of ``layout="rows"``) or of
a parameter is the sum over all ranks (a column-side gradient is a reduction
over the split axis, merged as states; parameter gradients are summed with an
allreduce), the same on every rank. Gradients of replicated outputs (axis 0 of
``layout="rows"``) sum the ranks' output gradients first.

Block-sparse ranges (``ranges=`` of Genred, ``lazy.ranges`` of reduce: KeOps'
6-tuple, docs/ranges.md) are those of the whole problem, in global indices, the
same on every rank, as one process would take them. Each rank clips them to its
own output rows and to each block of reduced points it folds, counted from
their starts; gradients read the transposed triple, as in one process.

Errors reach every rank: a rank whose arguments disagree with the others'
(count, dtype, dimensions, the number of replicated points, the ranges) makes
every rank raise ValueError with the same message, and so do ranges malformed
for the whole problem; an error on one rank is raised on all,
prefixed with that rank. The computation itself runs on the CPU (torch tensors
on a GPU are copied to the host and the results back).
"""
import hashlib

import numpy as np

from . import _arrays, _call, _lib, _ranges
from ._arrays import torch
from ._lib import KP_VAR_I, KP_VAR_J, KpNotImplementedError, KpValueError, formula
from .genred import postprocess, reduction_text

__all__ = ["Genred", "reduce", "LAYOUTS"]

LAYOUTS = ("rows", "ring")

_CLASSES = [(TypeError, _lib.KpTypeError), (MemoryError, _lib.KpMemoryError),
            (NotImplementedError, KpNotImplementedError), (ValueError, KpValueError)]


def _world(comm):
    if comm is not None:
        return comm
    try:
        from mpi4py import MPI
    except ImportError as e:  # pragma: no cover - depends on the machine
        raise ImportError("pykp.distributed needs mpi4py (Debian: python3-mpi4py; pip install mpi4py)") from e
    return MPI.COMM_WORLD


def _agree(comm, exc):
    """Collective: raises on every rank the first failing rank's error (or returns)."""
    mine = comm.rank if exc is not None else comm.size
    first = comm.allreduce(mine, op=_mpi_min())
    if first == comm.size:
        return
    kind = None
    if comm.rank == first:
        kind = next((i for i, (base, _) in enumerate(_CLASSES) if isinstance(exc, base)), -1)
        payload = (kind, str(exc))
    else:
        payload = None
    kind, message = comm.bcast(payload, root=first)
    cls = _CLASSES[kind][1] if kind >= 0 else _lib.KpRuntimeError
    err = cls("rank %d: %s" % (first, message))
    if comm.rank == first and exc is not None:
        raise err from exc
    raise err


def _mpi_min():
    from mpi4py import MPI

    return MPI.MIN


def _step(comm, fn, *args):
    """Runs fn locally, then agrees: every rank returns or every rank raises."""
    try:
        r, exc = fn(*args), None
    except Exception as e:  # agreed below, re-raised on every rank
        r, exc = None, e
    _agree(comm, exc)
    return r


def _split(layout, cat):
    return cat == KP_VAR_I or (cat == KP_VAR_J and layout == "ring")


def _triple(f, ranges):
    """The triple of ranges that f's axis reads: (clusters of output rows,
    slices, reduced ranges), as int64 arrays."""
    a = ranges.arrays[:3] if f.axis == 1 else ranges.arrays[3:]
    return tuple(np.asarray(x, dtype=np.int64) for x in a)


def _ranges_digest(f, ranges):
    """What the ranks compare of the ranges: a digest of the triple f reads."""
    if ranges is None:
        return None
    h = hashlib.sha256()
    for a in _triple(f, ranges):
        h.update(repr(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _clip(triple, whole, rows, cols):
    """The part of the whole problem's triple that falls in the output rows
    rows = (start, count) and the reduced points cols = (start, count) of each
    batch, counted from their starts (kp.h: a part's ranges are in its own
    coordinates), as a 6-tuple whose halves are both that triple (the plan
    reads its axis's only). whole = (rows, reduced points) per batch."""
    rr, sl, cc = triple
    (r0, nr), (c0, nc), (wr, wc) = rows, cols, whole
    if len(rr) == 0 or wr == 0:
        e2, e1 = np.zeros((0, 2), np.int64), np.zeros(0, np.int64)
        return (e2, e1, e2, e2, e1, e2)
    b = rr[:, 0] // wr  # each cluster lies in one batch
    lo = np.maximum(rr[:, 0] - b * wr, r0)
    hi = np.minimum(rr[:, 1] - b * wr, r0 + nr)
    kept = lo < hi
    owner = np.repeat(np.arange(len(rr)), np.diff(np.concatenate([[0], sl])))  # each reduced range's cluster
    cb = b[owner] if len(owner) else np.zeros(0, np.int64)
    clo = np.maximum(cc[: len(owner), 0] - cb * wc, c0)
    chi = np.minimum(cc[: len(owner), 1] - cb * wc, c0 + nc)
    ckept = (clo < chi) & kept[owner] if len(owner) else np.zeros(0, bool)
    new_rows = np.stack([b * nr + lo - r0, b * nr + hi - r0], axis=1)[kept]
    new_cols = np.stack([cb * nc + clo - c0, cb * nc + chi - c0], axis=1)[ckept]
    new_slices = np.cumsum(np.bincount(owner[ckept], minlength=len(rr)))[kept]
    return (new_rows, new_slices, new_cols, new_rows, new_slices, new_cols)


def _check_same(comm, f, arrays, layout, ranges=None):
    """ValueError on every rank when the ranks' arguments disagree (only the
    rows of split variables may differ); the message is computed from every
    rank's signature, so it is the same everywhere."""
    sig = [layout, f.axis, len(arrays), _ranges_digest(f, ranges)]
    for k, a in enumerate(arrays):
        info = f.args[k] if k < len(f.args) else None
        if info is None or a is None:
            sig.append(None)
            continue
        shape = tuple(-1 if (_split(layout, info.cat) and d == a.ndim - 2) else int(s) for d, s in enumerate(a.shape))
        sig.append((str(a.dtype), a.ndim, shape))
    sigs = comm.allgather(sig)
    for r, s in enumerate(sigs):
        if s == sigs[0]:
            continue
        for pos, (x, y) in enumerate(zip(sigs[0], s)):
            if x != y:
                if pos == 3:
                    raise KpValueError("pykp.distributed: ranks 0 and %d disagree on the ranges (the triple of "
                                       "axis %d, or ranges on some ranks only): pass the ranges of the whole "
                                       "problem, the same on every rank" % (r, f.axis))
                what = ("the layout", "the axis", "the number of arguments")[pos] if pos < 3 else (
                    "argument %d" % (pos - 4))
                raise KpValueError("pykp.distributed: ranks 0 and %d disagree on %s: %r against %r (only the rows of "
                                   "split variables may differ)" % (r, what, x, y))
        raise KpValueError("pykp.distributed: ranks 0 and %d disagree on the number of arguments" % r)


def _rows_of(f, arrays, cat):
    for info, a in zip(f.args, arrays):
        if info is not None and a is not None and info.cat == cat:
            return int(a.shape[-2])
    return -1


class _Call:
    """One distributed reduction of formula f on host arrays (NumPy)."""

    def __init__(self, f, code, arrays, layout, comm, ranges=None):
        self.f, self.code, self.arrays, self.layout, self.comm = f, code, arrays, layout, comm
        self.ranges = ranges  # of the whole problem (a _ranges.Ranges), or None
        self.whole = None  # (output rows, reduced points) per batch of the whole problem, for the ranges
        self.plan = f.plan(code)
        self.red_cat = KP_VAR_J if f.axis == 1 else KP_VAR_I
        self.row_cat = KP_VAR_I if f.axis == 1 else KP_VAR_J

    def descs(self, arrays):
        call = _call.prepare(self.f, arrays)
        return call.descs, call.nx, call.ny

    def new_state(self, row_offset):
        d, nx, ny = self.descs(self.arrays)
        return _lib.state_new(self.plan, d, nx, ny, row_offset)

    def fold(self, arrays, offset, state, rows=None, cols=None):
        """Folds a part: its reduced points start at global index offset; with
        ranges, rows and cols are (start, count) of the part's output rows and
        reduced points in the whole problem."""
        d, nx, ny = self.descs(arrays)
        part = None
        if self.ranges is not None:
            part = _ranges.Ranges(_clip(_triple(self.f, self.ranges), self.whole, rows, cols))
        _lib.state_fold(self.plan, d, offset, state, nx, ny, part)

    def check_ranges(self, nrows, ncols):
        """Checks the ranges against the whole problem (ValueError), which no
        part's clipped ranges can do."""
        self.whole = (nrows, ncols)
        if self.ranges is not None:
            d, nx, ny = self.descs(self.arrays)
            nbatch = _lib.state_info(self.plan, d, nx, ny).nbatch
            _lib.ranges_check(self.plan, self.ranges, nbatch, nrows, ncols)

    def finalize(self, state):
        d, nx, ny = self.descs(self.arrays)
        vshape, ishape = _call.output_shapes(self.f, self.code, d, nx, ny)
        # float16 or complex calls: outputs in libkp's storage dtypes
        vals = _arrays.empty_values(_arrays.NumpyBackend, vshape, self.code) if vshape is not None else None
        idx = np.empty(ishape, np.int64) if ishape is not None else None
        _lib.state_finalize(self.plan, d, state,
                            _arrays.describe(vals) if vals is not None else None,
                            _arrays.describe(idx) if idx is not None else None, nx, ny)
        return vals, idx

    def offsets(self, n):
        counts = self.comm.allgather(max(n, 0))
        return counts, sum(counts[: self.comm.rank])

    def run(self):
        comm = self.comm
        _step(comm, _check_same, comm, self.f, self.arrays, self.layout, self.ranges)
        if self.layout == "rows":
            ni, m = max(_rows_of(self.f, self.arrays, KP_VAR_I), 0), max(_rows_of(self.f, self.arrays, KP_VAR_J), 0)
            counts, first = self.offsets(ni)
            if self.f.axis == 1:
                _step(comm, self.check_ranges, sum(counts), m)
                state = _step(comm, self._fold_all, first, 0, (first, ni), (0, m))
            else:
                _step(comm, self.check_ranges, m, sum(counts))
                state = _step(comm, self._fold_all, 0, first, (0, m), (first, ni))
                state = self._tree_merge(state)
        else:
            state = self._ring()
        return _step(comm, self.finalize, state)

    def _fold_all(self, row_offset, offset, rows, cols):
        state = self.new_state(row_offset)
        self.fold(self.arrays, offset, state, rows, cols)
        return state

    def _tree_merge(self, state):
        """Rank 0 merges every rank's state in rank order over a fixed binary
        tree, then broadcasts the result (the same bits on every rank)."""
        comm, rank, size = self.comm, self.comm.rank, self.comm.size
        step = 1
        while step < size:
            if rank % (2 * step) == 0 and rank + step < size:
                other = bytearray(len(state))
                comm.Recv(other, source=rank + step, tag=7)
                _step(comm, _lib.state_merge, self.plan, state, other)
            elif rank % (2 * step) == step:
                comm.Send(state, dest=rank - step, tag=7)
                _step(comm, lambda: None)
            else:
                _step(comm, lambda: None)
            step *= 2
        comm.Bcast(state, root=0)
        return state

    def _pass_on(self, block, incoming_rows):
        """Starts sending block to the left neighbour and receiving the right
        one's (incoming_rows points); returns (the arrays being received,
        the requests to wait for)."""
        comm = self.comm
        left, right = (comm.rank - 1) % comm.size, (comm.rank + 1) % comm.size
        nxt, requests = {}, []
        for tag, (k, a) in enumerate(sorted(block.items())):
            shape = list(a.shape)
            shape[-2] = incoming_rows
            nxt[k] = np.empty(shape, a.dtype)
            # as bytes: MPI has no float16 type (both buffers are contiguous)
            requests.append(comm.Irecv(nxt[k].view(np.uint8), source=right, tag=16 + tag))
            requests.append(comm.Isend(a.view(np.uint8), dest=left, tag=16 + tag))
        return nxt, requests

    def _ring(self):
        """Blocks of the reduced variables go around the ring (rank r receives
        from r + 1, sends to r - 1); blocks of ranks >= r fold into tail, the
        others into head, each in increasing global order."""
        comm, rank, size = self.comm, self.comm.rank, self.comm.size
        counts, _ = self.offsets(_rows_of(self.f, self.arrays, self.red_cat))
        nrows = max(_rows_of(self.f, self.arrays, self.row_cat), 0)
        row_counts, first_row = self.offsets(nrows)
        starts = [sum(counts[:r]) for r in range(size)]
        _step(comm, self.check_ranges, sum(row_counts), sum(counts))
        head = _step(comm, self.new_state, first_row)
        tail = _step(comm, self.new_state, first_row)
        travel = [k for k, info in enumerate(self.f.args) if info is not None and info.cat == self.red_cat]
        block = {k: np.ascontiguousarray(self.arrays[k]) for k in travel}
        err = None
        for s in range(size):
            owner = (rank + s) % size
            # the next block travels while this one is folded
            nxt, pending = self._pass_on(block, counts[(rank + s + 1) % size]) if s + 1 < size else (None, [])
            if err is None:
                try:
                    arrays = list(self.arrays)
                    for k in travel:
                        arrays[k] = block[k]
                    self.fold(arrays, starts[owner], tail if owner >= rank else head, (first_row, nrows),
                              (starts[owner], counts[owner]))
                except Exception as e:  # the ring goes on: every rank reaches the agreement
                    err = e
            _wait_all(pending)
            block = nxt
        if err is None and rank > 0 and starts[rank] > 0:  # head holds points: it comes first
            try:
                _lib.state_merge(self.plan, head, tail)
                tail = head
            except Exception as e:
                err = e
        _agree(comm, err)
        return tail


def _wait_all(requests):
    if requests:
        from mpi4py import MPI

        MPI.Request.Waitall(requests)


def _to_numpy(a):
    if torch is not None and isinstance(a, torch.Tensor):
        return np.ascontiguousarray(a.detach().cpu().numpy())
    return a if a is None or not hasattr(a, "shape") else np.ascontiguousarray(a)


def _run_numpy(key, args, layout, comm, ranges=None):
    f = formula(key)
    _, code, args = _call.canonical(f, args)
    arrays = [None if f.args[k] is None else _to_numpy(a) for k, a in enumerate(args)]
    return _Call(f, code, arrays, layout, comm, ranges).run()


def _rows_split(layout, axis):
    return layout == "ring" or axis == 1


def _allreduce_sum(comm, a):
    from mpi4py import MPI

    if a.dtype == np.float16:  # MPI has no float16 sum: added in float32, rounded once
        return _allreduce_sum(comm, a.astype(np.float32)).astype(np.float16)
    out = np.empty_like(a)
    comm.Allreduce(np.ascontiguousarray(a), out, op=MPI.SUM)
    return out


if torch is not None:
    from .genred import _fit_grad

    class _AllreduceSum(torch.autograd.Function):
        """The sum of a tensor over the ranks, on every rank. The loss being the
        sum of every rank's loss, its backward is the same allreduce."""

        @staticmethod
        def forward(ctx, comm, a):
            ctx.comm = comm
            return torch.from_numpy(_allreduce_sum(comm, _to_numpy(a))).to(a.device)

        @staticmethod
        def backward(ctx, G):
            return None, _AllreduceSum.apply(ctx.comm, G)

    def _allreduce(comm, a):
        return _AllreduceSum.apply(comm, a)

    class _DistFunction(torch.autograd.Function):
        """A distributed reduction with its gradients (_DIFFERENTIABLE): each
        gradient is itself a distributed reduction (kp_formula_grad), run with
        the same layout through this Function again, so that gradients are
        differentiable to any order."""

        @staticmethod
        def forward(ctx, spec, *args):
            key, layout, comm, ranges = spec
            selects = formula(key).reduction in _lib.WITH_INDICES  # Min, Max, KMin: backward needs the indices
            vals, idx = _run_numpy((key, "idx") if selects else key, list(args), layout, comm, ranges)
            ref = next(a for a in args if isinstance(a, torch.Tensor))
            out = torch.from_numpy(vals).to(ref.device)
            ctx.spec = spec
            ctx.idx = idx  # global indices (NumPy), for the gradients of Min/Max/KMin
            ctx.save_for_backward(*[a if isinstance(a, torch.Tensor) else None for a in args], out)
            ctx.nonarrays = [None if isinstance(a, torch.Tensor) else a for a in args]
            return out

        @staticmethod
        def backward(ctx, G):
            key, layout, comm, ranges = ctx.spec
            saved = ctx.saved_tensors
            args = [s if s is not None else n for s, n in zip(saved[:-1], ctx.nonarrays)]
            f = formula(key)
            if f.reduction not in _DIFFERENTIABLE or (f.sums_rows and ctx.idx is not None):
                raise KpNotImplementedError("pykp.distributed: gradients of %s reductions are not supported (%s are, "
                                            "and %s of parameter gradients)" % (
                                                f.reduction, ", ".join(_DIFFERENTIABLE), ", ".join(_SUMMED_ROWS)))
            if not _rows_split(layout, f.axis):  # replicated outputs: the ranks' output gradients add up
                if torch.is_grad_enabled() and f.reduction in _READS_OUTPUT:
                    # The gradient would read the replicated output, and a gradient reaching it later is
                    # already the ranks' sum, which this allreduce would count once per rank.
                    raise KpNotImplementedError(
                        "pykp.distributed: second derivatives of %s with replicated outputs (layout='rows', axis=0) "
                        "are not supported: use layout='ring'" % f.reduction)
                G = _allreduce(comm, G)
            extras = _grad_extras(ctx, key, args, saved[-1], G)
            grads = [None] * len(args)
            for k, info in enumerate(f.args):
                if info is None or not ctx.needs_input_grad[k + 1]:
                    continue
                gkey = (key, "grad", k)
                g = formula(gkey)
                # the same 6-tuple: a gradient over the other axis reads the transposed triple
                gv = _reduce_values(gkey, (list(args) + extras(g.nargs - len(args)))[: g.nargs], layout, comm, ranges)
                if g.sums_rows and _rows_split(layout, g.axis):  # each rank summed its own rows
                    gv = _allreduce(comm, gv)
                # batch dimensions an argument broadcast over (a parameter of batched variables) are summed
                grads[k] = _fit_grad(gv, args[k], info.cat)
            return (None, *grads)

    def _grad_extras(ctx, key, args, out, G):
        """A function of n giving the n arguments the gradient formulas take
        after the forward's: G, then the forward output (LogSumExp,
        SumSoftMaxWeight) or the selected global indices as numbers (Min, Max,
        KMin), then SumSoftMaxWeight's log-sum-exp (computed when asked)."""
        _, layout, comm, ranges = ctx.spec
        if ctx.idx is None and formula(key).sums_rows:  # a parameter gradient: its gradient needs the rows' outputs
            second = None
        elif ctx.idx is None:
            second = out
        else:  # as float32 for float16 outputs, which hold integers exactly only up to 2048
            dt = _to_numpy(out).dtype
            second = torch.from_numpy(ctx.idx.astype(np.float32 if dt == np.float16 else dt)).to(out.device)
        extras = [G, second]

        def take(n):
            if n > 1 and extras[1] is None:
                extras[1] = _reduce_values((key, "rows"), list(args)[: formula((key, "rows")).nargs], layout, comm,
                                           ranges)
            if n > 2 and len(extras) == 2:
                extras.append(_reduce_values((key, "lse"), list(args), layout, comm, ranges))
            return extras[:n]

        return take

    def _reduce_values(key, args, layout, comm, ranges=None):
        """The values of a distributed reduction, through _DistFunction when
        torch records a graph (double backward), else computed directly."""
        if _needs_autograd(args):
            return _DistFunction.apply((key, layout, comm, ranges), *args)
        vals, _ = _run_numpy(key, list(args), layout, comm, ranges)
        ref = next(a for a in args if isinstance(a, torch.Tensor))
        return torch.from_numpy(vals).to(ref.device)


_DIFFERENTIABLE = ("Sum", "LogSumExp", "SumSoftMaxWeight", "Min", "Max", "KMin")
_SUMMED_ROWS = ("Sum", "LogSumExp", "SumSoftMaxWeight")  # reductions whose parameter gradients differentiate again
_READS_OUTPUT = ("LogSumExp", "SumSoftMaxWeight")  # gradients that read the forward output


def _needs_autograd(args):
    return torch is not None and torch.is_grad_enabled() and any(
        isinstance(a, torch.Tensor) and a.requires_grad for a in args
    )


def _reduce_key(key, args, reduction, opt_arg, layout, comm, ranges=None):
    if layout not in LAYOUTS:
        raise KpValueError("pykp.distributed: layout must be one of %s, got %r" % (LAYOUTS, layout))
    ranges = _ranges.prepare(ranges)  # types and shapes, before any collective call
    comm = _world(comm)
    torch_out = torch is not None and any(isinstance(a, torch.Tensor) for a in args)
    if _needs_autograd(args) and formula(key).out_index_dim == 0:  # Arg* and *_Arg*: no values to differentiate
        vals = _DistFunction.apply((key, layout, comm, ranges), *args)
        return postprocess(vals, None, reduction, opt_arg)
    vals, idx = _run_numpy(key, list(args), layout, comm, ranges)
    if torch_out:
        ref = next(a for a in args if isinstance(a, torch.Tensor))
        vals = None if vals is None else torch.from_numpy(vals).to(ref.device)
        idx = None if idx is None else torch.from_numpy(idx).to(ref.device)
    return postprocess(vals, idx, reduction, opt_arg)


class Genred:
    """pykp.Genred over an MPI communicator.

    >>> g = Genred("Exp(-SqDist(x,y))*b", ["x = Vi(3)", "y = Vj(3)", "b = Vj(1)"], "Sum", axis=1, layout="ring")
    >>> a = g(x_mine, y_mine, b_mine)      # the rows of this rank's x points

    Parameters
    ----------
    formula, aliases, reduction_op, axis, opt_arg, formula2
        As for pykp.Genred.
    layout : {"rows", "ring"}
        "rows": i points split over the ranks, j points replicated; "ring":
        both split (see the module's documentation).
    comm : mpi4py communicator, optional
        MPI.COMM_WORLD by default.
    """

    def __init__(self, formula, aliases, reduction_op="Sum", axis=0, opt_arg=None, formula2=None, layout="rows",
                 comm=None):
        if isinstance(aliases, str):
            aliases = [aliases]
        self.aliases = tuple(str(a) for a in (aliases or ()))
        self.text = reduction_text(formula, reduction_op, axis, opt_arg, formula2)
        self.key = ("parse", self.text, self.aliases)
        self.reduction = {"SoftMax": "SumSoftMaxWeight"}.get(reduction_op, reduction_op)
        self.opt_arg = int(opt_arg) if opt_arg is not None else None
        if layout not in LAYOUTS:
            raise KpValueError("pykp.distributed: layout must be one of %s, got %r" % (LAYOUTS, layout))
        self.layout = layout
        self.comm = comm
        _lib.formula(self.key)  # parse now: formula errors surface here

    def __call__(self, *args, ranges=None):
        """The reduction of this rank's arguments: NumPy arrays or torch tensors
        (differentiable, see the module's documentation), one per alias.
        ranges: KeOps' block-sparse 6-tuple of the whole problem (global
        indices, the same on every rank), as pykp.Genred takes it."""
        return _reduce_key(self.key, args, self.reduction, self.opt_arg, self.layout, self.comm, ranges)

    def __repr__(self):
        return "pykp.distributed.Genred(%r, layout=%r)" % (self.text, self.layout)


def reduce(lazy, reduction_op, axis, opt_arg=None, layout="rows", comm=None):
    """A LazyTensor reduction over an MPI communicator:
    ``reduce(x_i.sqdist(y_j), "Min", axis=1, layout="ring")`` is
    ``x_i.sqdist(y_j).min(axis=1)`` with this rank's points.

    Parameters
    ----------
    lazy : pykp.LazyTensor
        The expression, built from this rank's arrays; its block-sparse
        ``ranges``, if set, are those of the whole problem (global indices, the
        same on every rank).
    reduction_op : str
        As for pykp.Genred ("Sum", "LogSumExp", "Min", "ArgKMin", ...).
    axis : {0, 1}
        0 reduces over i, 1 over j.
    opt_arg : int, optional
        K of the KMin family.
    layout, comm
        As for Genred.
    """
    texts, args = lazy._text(())
    text = reduction_text(texts[0], reduction_op, axis, opt_arg)
    key = ("parse", text, ())
    red = {"SoftMax": "SumSoftMaxWeight"}.get(reduction_op, reduction_op)
    return _reduce_key(key, list(args), red, opt_arg, layout, comm, lazy.ranges)
