"""
solve.py -- kernel linear systems: KernelSolve and LazyTensor.solve.

Solves (alpha I + K) a = b, K the kernel operator of a Sum reduction linear in
one variable (KeOps' KernelSolve), by conjugate gradients whose matrix-vector
products are libkp reductions: O(N) memory. Optional preconditioners make the
iteration count drop on ill-conditioned kernels:

- "nystrom": a rank-m Nystrom approximation U diag(lam) U^T of K from m
  landmark points, inverted exactly in (alpha I + U diag(lam) U^T) form
  (Frangella, Tropp, Udell 2023: P^-1 = (lam_m + alpha) U (diag(lam) + alpha)^-1
  U^T + I - U U^T);
- "block_jacobi": the exact inverses of the diagonal blocks alpha I + K_kk of
  clusters given as [start, end) ranges of sorted points (pykp.cluster).

With torch tensors the solve is differentiable: the gradient w.r.t. b is
another solve, a_G = (alpha I + K)^-1 G, and w.r.t. every other input it is
the implicit-function rule -a_G^T (dK/dv) a: one libkp gradient reduction of
the kernel product with a in the place of b (K symmetric, as CG needs). No
iteration is unrolled, and both are differentiable again.
"""
import math
import warnings
from typing import Any, Callable, NamedTuple, Optional, Sequence

import numpy as np

from . import _arrays
from ._arrays import is_array, torch
from ._lib import KP_VAR_I, KP_VAR_J, KP_VAR_PARAM, KpNotImplementedError, KpTypeError, KpValueError, formula
from .genred import Genred, reduce

__all__ = ["KernelSolve", "SolveInfo", "conjugate_gradient", "lazy_solve"]


class SolveInfo(NamedTuple):
    """What one solve did: CG iterations (matrix-vector products), the final
    residual |b - (alpha I + K) a| (Frobenius, the recursively updated one),
    whether it reached the tolerance, and the preconditioner's name."""

    iterations: int
    residual: float
    converged: bool
    preconditioner: Optional[str]


def _is_tensor(a) -> bool:
    return torch is not None and isinstance(a, torch.Tensor)


def _to_numpy64(a) -> np.ndarray:
    return (a.detach().cpu().numpy() if _is_tensor(a) else np.asarray(a)).astype(np.float64)


def _like(a64: np.ndarray, ref):
    """A float64 NumPy array as an array of ref's kind, dtype and device."""
    if _is_tensor(ref):
        return torch.from_numpy(np.ascontiguousarray(a64)).to(dtype=ref.dtype, device=ref.device)
    return a64.astype(ref.dtype, copy=False)


# ----------------------------------------------------------------- the operator


class KernelOperator:
    """v -> K v for the Sum reduction `key` with v at argument `pos` (a
    variable of the reduced axis); also the dense blocks K[rows, cols] that
    the preconditioners need, through a reduction with a one-hot factor (no
    N x N matrix is ever formed).

    Parameters
    ----------
    key : registry key of the Sum reduction ("parse", text, aliases)
    args : the reduction's arguments (args[pos] is replaced)
    pos : position of the variable the formula is linear in
    scheme : float32 sum scheme of the reductions (None: the global one)
    """

    def __init__(self, key, args: Sequence[Any], pos: int, scheme=None, ranges=None):
        self.key = key
        self.f = formula(key)
        self.args = list(args)
        self.pos = pos
        self.scheme = scheme
        self.ranges = ranges  # block-sparse ranges (pykp._ranges.Ranges) of the products, None: dense
        self.d = self.f.out_dim
        self.colcat = self.f.args[pos].cat
        self.rowcat = KP_VAR_I if self.colcat == KP_VAR_J else KP_VAR_J

    def __call__(self, v):
        args = list(self.args)
        args[self.pos] = v
        out, _ = reduce(self.key, args, scheme=self.scheme, ranges=self.ranges)
        return out

    def _block_key(self, width: int):
        text, aliases = self.key[1], tuple(self.key[2])
        inner = text[len("Sum_Reduction(") : text.rindex(",")]
        cat = "Vj" if self.colcat == KP_VAR_J else "Vi"
        n = self.f.nargs
        return (
            "parse",
            "Sum_Reduction(TensorProd(%s,OneHot(%s(%d,1),%d)),%d)" % (inner, cat, n, width, self.f.axis),
            aliases,
        ), cat

    # Columns per reduction in dense(): a one-hot of width w costs w d per
    # pair, so chunks keep the cost at O(len(rows) len(cols) (w + cost of F)).
    CHUNK = 16

    def dense(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """K[rows, cols] as a float64 (len(rows) d, len(cols) d) matrix, entry
        [i d + r, j d + c] = component r of F(row i, col j, e_c)."""
        ref = self.args[self.pos]
        row_args = []
        for k, a in enumerate(self.args):
            info = self.f.args[k]
            if info is not None and info.cat == self.rowcat and is_array(a):
                a = self._take(a, rows)
            row_args.append(a)
        d, m = self.d, len(cols)
        out = np.empty((len(rows), d, m, d))
        for lo in range(0, m, self.CHUNK):
            chunk = cols[lo : lo + self.CHUNK]
            w = len(chunk)
            key, _ = self._block_key(w)
            args = list(row_args)
            for k, a in enumerate(self.args):
                info = self.f.args[k]
                if info is not None and info.cat == self.colcat and k != self.pos and is_array(a):
                    args[k] = self._take(a, chunk)
            onehot = _like(np.arange(w, dtype=np.float64).reshape(-1, 1), ref)
            for c in range(d):
                e = np.zeros((w, d))
                e[:, c] = 1
                args[self.pos] = _like(e, ref)
                vals, _ = reduce(key, args + [onehot], scheme=self.scheme)
                out[:, :, lo : lo + w, c] = _to_numpy64(vals).reshape(len(rows), d, w)
        return out.reshape(len(rows) * d, m * d)

    @staticmethod
    def _take(a, idx: np.ndarray):
        if _is_tensor(a):
            return a[torch.from_numpy(idx).to(a.device)]
        return a[idx]


# ----------------------------------------------------------------- preconditioners


class NystromPreconditioner:
    """P^-1 for alpha I + K from a rank-m Nystrom approximation of K.

    K ~ C W^+ C^T with C = K[:, L], W = K[L, L] for m landmarks L (uniform
    without replacement, seeded); with C W^-1/2 = U diag(sqrt(lam)) V^T (W's
    and the Gram matrix's eigenvalues below 1e-12 of the largest dropped),
        P^-1 = (lam_min + alpha) U (diag(lam) + alpha)^-1 U^T + (I - U U^T).
    Building it costs N m kernel evaluations of width m d (one reduction) and
    O(N m^2) dense algebra; applying it, two (N d, m d) products."""

    name = "nystrom"

    def __init__(self, op: KernelOperator, alpha: float, landmarks, n: int, seed: int = 0):
        if isinstance(landmarks, (int, np.integer)) and not isinstance(landmarks, bool):
            m = int(landmarks)
            if not 1 <= m <= n:
                raise KpValueError("pykp: landmarks must be between 1 and N = %d, got %d" % (n, m))
            L = np.sort(np.random.default_rng(seed).choice(n, size=m, replace=False))
        else:
            L = np.unique(np.asarray(_to_numpy64(landmarks), dtype=np.int64).ravel())
            if L.size == 0 or L[0] < 0 or L[-1] >= n:
                raise KpValueError("pykp: landmarks must be indices in [0, %d)" % n)
        C = op.dense(np.arange(n), L)  # (n d, m d)
        d = op.d
        rows = (L[:, None] * d + np.arange(d)[None, :]).ravel()
        W = C[rows]
        W = 0.5 * (W + W.T)
        w, Q = np.linalg.eigh(W)
        keep = w > 1e-12 * max(w.max(), 0.0) if w.max() > 0 else np.zeros_like(w, dtype=bool)
        if not keep.any():
            raise KpValueError("pykp: the Nystrom preconditioner found K[L, L] without a positive eigenvalue")
        B = C @ (Q[:, keep] / np.sqrt(w[keep]))  # K ~ B B^T
        # B = U diag(sqrt(lam)) V^T from the small Gram matrix B^T B = V diag(lam) V^T
        # (an (m d)^2 eigenproblem instead of an SVD of the tall B)
        lam, V = np.linalg.eigh(B.T @ B)
        good = lam > 1e-12 * lam.max()
        lam, V = lam[good], V[:, good]
        U = (B @ V) / np.sqrt(lam)
        lam_min = lam.min()
        self.rank = int(lam.size)
        ref = op.args[op.pos] if is_array(op.args[op.pos]) else np.zeros(1)
        self.U = _like(U, ref)
        self.scale = _like(((lam_min + alpha) / (lam + alpha) - 1.0).reshape(-1, 1), ref)

    def __call__(self, r):
        shape = r.shape
        v = r.reshape(-1, 1)
        Ut_v = self.U.T @ v
        return (v + self.U @ (self.scale * Ut_v)).reshape(shape)


class BlockJacobiPreconditioner:
    """P^-1 = blockdiag((alpha I + K_kk)^-1) over clusters k given as
    [start, end) ranges (C, 2) of the sorted points (pykp.cluster.cluster_ranges);
    points outside every block keep P = I. Building it costs sum_k n_k^2
    kernel evaluations (one reduction per block) and the dense inverses;
    eigenvalues of a block below 1e-12 of its largest are raised to that."""

    name = "block_jacobi"

    def __init__(self, op: KernelOperator, alpha: float, blocks, n: int):
        rng = np.asarray(_to_numpy64(blocks)).astype(np.int64) if is_array(blocks) else np.asarray(blocks, dtype=np.int64)
        if rng.ndim != 2 or rng.shape[1] != 2:
            raise KpValueError("pykp: blocks must be (C, 2) [start, end) ranges, got shape %s" % (rng.shape,))
        if (rng[:, 0] < 0).any() or (rng[:, 1] > n).any() or (rng[:, 1] < rng[:, 0]).any():
            raise KpValueError("pykp: blocks must be ranges 0 <= start <= end <= N = %d" % n)
        order = np.argsort(rng[:, 0], kind="stable")
        rng = rng[order]
        if (rng[1:, 0] < rng[:-1, 1]).any():
            raise KpValueError("pykp: blocks must not overlap")
        d = op.d
        ref = op.args[op.pos]
        self.blocks = []
        for a, b in rng:
            if b <= a:
                continue
            idx = np.arange(a, b)
            A = op.dense(idx, idx)
            A = 0.5 * (A + A.T) + alpha * np.eye(A.shape[0])
            w, Q = np.linalg.eigh(A)
            w = np.maximum(w, 1e-12 * max(abs(w).max(), 1e-300))
            self.blocks.append((int(a) * d, int(b) * d, _like((Q / w) @ Q.T, ref)))

    def __call__(self, r):
        shape = r.shape
        v = r.reshape(-1)
        z = v.clone() if _is_tensor(v) else v.copy()
        for lo, hi, inv in self.blocks:
            z[lo:hi] = inv @ v[lo:hi]
        return z.reshape(shape)


# ----------------------------------------------------------------- conjugate gradients


def _dot(a, b) -> float:
    return float((a * b).sum())


def conjugate_gradient(
    matvec: Callable,
    b,
    eps: float = 1e-6,
    rtol: float = 0.0,
    maxiter: int = 1000,
    precond: Optional[Callable] = None,
    callback: Optional[Callable] = None,
):
    """Preconditioned CG for A a = b, A symmetric positive definite.

    Stops when |r| <= max(eps, rtol |b|) (r = b - A a updated recursively,
    Frobenius norm over every column), or after maxiter products. Returns
    (a, iterations, |r|, converged). Raises KpValueError when p^T A p <= 0
    (A not positive definite). Works on NumPy arrays and torch tensors alike."""
    x = b * 0
    r = b.clone() if _is_tensor(b) else b.copy()
    stop = max(float(eps), float(rtol) * math.sqrt(_dot(b, b)))
    rnorm = math.sqrt(_dot(r, r))
    if not math.isfinite(rnorm):
        raise KpValueError("pykp: the right-hand side holds NaN or Inf")
    if rnorm <= stop:
        return x, 0, rnorm, True
    z = precond(r) if precond is not None else r
    p = z
    rz = _dot(r, z)
    for it in range(1, maxiter + 1):
        q = matvec(p)
        pq = _dot(p, q)
        if not pq > 0:
            raise KpValueError(
                "pykp: alpha*I + K is not positive definite (p^T A p = %g at iteration %d); "
                "use a positive definite kernel, the same points for x and y, or a larger alpha" % (pq, it)
            )
        a = rz / pq
        x = x + a * p
        r = r - a * q
        rnorm = math.sqrt(_dot(r, r))
        if callback is not None:
            callback(it, rnorm)
        if rnorm <= stop:
            return x, it, rnorm, True
        z = precond(r) if precond is not None else r
        rz_new = _dot(r, z)
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x, maxiter, rnorm, False


# ----------------------------------------------------------------- the solver


class _Config:
    """A solve's settings, shared by forward and backward solves."""

    __slots__ = ("key", "pos", "alpha", "eps", "rtol", "maxiter", "scheme", "ranges", "precond", "landmarks", "blocks",
                 "seed", "callback", "owner", "built")

    def __init__(self, **kw):
        self.built = None  # the preconditioner, built once per call and reused by backward solves
        for k in self.__slots__:
            if k != "built":
                setattr(self, k, kw[k])


def _make_precond(cfg: _Config, op: KernelOperator, n: int):
    if cfg.precond is None:
        return None
    if callable(cfg.precond):
        return cfg.precond
    if cfg.built is None:
        with _no_grad():
            if cfg.precond == "nystrom":
                cfg.built = NystromPreconditioner(op, cfg.alpha, cfg.landmarks, n, cfg.seed)
            elif cfg.precond == "block_jacobi":
                if cfg.blocks is None:
                    raise KpValueError("pykp: precond='block_jacobi' needs blocks=, (C, 2) cluster ranges")
                cfg.built = BlockJacobiPreconditioner(op, cfg.alpha, cfg.blocks, n)
    return cfg.built


class _no_grad:
    def __enter__(self):
        self.ctx = torch.no_grad() if torch is not None else None
        if self.ctx is not None:
            self.ctx.__enter__()

    def __exit__(self, *exc):
        if self.ctx is not None:
            self.ctx.__exit__(*exc)


def _detach(a):
    return a.detach() if _is_tensor(a) else a


def _solve_plain(cfg: _Config, args: list):
    """(alpha I + K)^-1 args[pos] on detached arrays; returns (a, SolveInfo)."""
    args = [_detach(a) for a in args]
    b = args[cfg.pos]
    op = KernelOperator(cfg.key, args, cfg.pos, cfg.scheme, cfg.ranges)
    n = b.shape[0]
    with _no_grad():
        P = _make_precond(cfg, op, n)
        matvec = (lambda v: op(v) + cfg.alpha * v) if cfg.alpha else op
        a, it, res, ok = conjugate_gradient(matvec, b, cfg.eps, cfg.rtol, cfg.maxiter, P, cfg.callback)
    name = None if P is None else getattr(P, "name", "custom")
    info = SolveInfo(it, res, ok, name)
    if cfg.owner is not None:
        cfg.owner.info = info
    if not ok:
        warnings.warn(
            "pykp: KernelSolve did not converge in %d iterations (residual %.3g > %.3g); raise maxiter, loosen eps "
            "or use a preconditioner" % (it, res, max(cfg.eps, cfg.rtol * math.sqrt(_dot(b, b)))),
            RuntimeWarning,
            stacklevel=4,
        )
    return a, info


if torch is not None:

    class _KernelSolveFn(torch.autograd.Function):
        """a = (alpha I + K(args))^-1 args[pos]; backward: one solve for the
        adjoint a_G, one gradient reduction per other input (see module doc)."""

        @staticmethod
        def forward(ctx, cfg, *args):
            a, _ = _solve_plain(cfg, list(args))
            ctx.cfg = cfg
            ctx.save_for_backward(*[x if _is_tensor(x) else None for x in args], a)
            ctx.plain = [None if _is_tensor(x) else x for x in args]
            return a

        @staticmethod
        def backward(ctx, G):
            cfg = ctx.cfg
            saved = ctx.saved_tensors
            args = [s if s is not None else p for s, p in zip(saved[:-1], ctx.plain)]
            a = saved[-1]
            needs = ctx.needs_input_grad[1:]
            grads = [None] * len(args)
            if not any(needs):
                return (None,) + tuple(grads)
            rhs = list(args)
            rhs[cfg.pos] = G
            aG = _KernelSolveFn.apply(cfg, *rhs)
            if needs[cfg.pos]:
                grads[cfg.pos] = aG
            others = [k for k in range(len(args)) if k != cfg.pos and needs[k]]
            if others:
                fargs = list(args)
                fargs[cfg.pos] = a
                for k in others:
                    g, _ = reduce((cfg.key, "grad", k), fargs + [-aG], scheme=cfg.scheme, ranges=cfg.ranges)
                    grads[k] = g.reshape(args[k].shape)
            return (None,) + tuple(grads)


def _varinv_position(varinvalias, aliases: Sequence[str], f) -> int:
    if isinstance(varinvalias, (int, np.integer)) and not isinstance(varinvalias, bool):
        return int(varinvalias)
    if not isinstance(varinvalias, str):
        raise KpTypeError("pykp: varinvalias must be an alias name or 'Var(k,d,cat)', got %r" % (varinvalias,))
    s = varinvalias.replace(" ", "")
    for prefix in ("Var(", "Vi(", "Vj("):
        if s.startswith(prefix):
            try:
                return int(s[len(prefix) : s.index(",")])
            except ValueError:
                raise KpValueError("pykp: cannot read a position in varinvalias %r" % (varinvalias,)) from None
    names = [a.split("=")[0].strip() for a in aliases]
    if s not in names:
        raise KpValueError("pykp: varinvalias %r is not one of the aliases %s" % (varinvalias, names))
    # aliases without a position take the next free one, in order (kp.h): ask the parser
    for k, a in enumerate(aliases):
        if a.split("=")[0].strip() == s:
            rhs = a.split("=", 1)[1].replace(" ", "")
            inner = rhs[rhs.index("(") + 1 : -1].split(",")
            if len(inner) == 2:
                return int(inner[0])
            return _implicit_position(aliases, k)
    raise KpValueError("pykp: varinvalias %r not found" % (varinvalias,))


def _implicit_position(aliases: Sequence[str], k: int) -> int:
    """Position of alias k when it gives none: the next position not taken by
    an explicit one, counting the implicit aliases before it."""
    taken = set()
    for a in aliases:
        inner = a.split("=", 1)[1].replace(" ", "")
        parts = inner[inner.index("(") + 1 : -1].split(",")
        if len(parts) == 2:
            taken.add(int(parts[0]))
    pos = -1
    for j in range(k + 1):
        inner = aliases[j].split("=", 1)[1].replace(" ", "")
        if len(inner[inner.index("(") + 1 : -1].split(",")) == 2:
            continue
        pos += 1
        while pos in taken:
            pos += 1
    return pos


class KernelSolve:
    """Solves (alpha I + K) a = b for a kernel operator K (KeOps' KernelSolve).

        >>> Kinv = KernelSolve("Exp(-SqDist(x,y)*g)*b", ["x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(1)"],
        ...                    "b", axis=1)
        >>> a = Kinv(x, x, g, b, alpha=0.1)       # a = (0.1 I + K_xx)^-1 b, shape (N, 1)

    formula, aliases: a Sum reduction's formula, linear in the variable
    varinvalias (an alias name, or "Var(k,d,cat)"), which must be indexed by
    the reduced axis (Vj for axis=1, Vi for axis=0) with the output's
    dimension. K must be square (N = M) and alpha I + K symmetric positive
    definite: a positive definite kernel of the same points (x = y), or
    alpha > 0 and a positive semi-definite one. Neither is checked; CG fails
    with a clear error when it meets p^T A p <= 0.
    The other options are Genred's, read as Genred reads them (dtype_acc,
    use_double_acc, sum_scheme, enable_chunks, rec_multVar_highdim, dtype,
    cuda_type, use_fast_math: pykp._options says each one's effect).

    Calling it: the arguments of the formula, b at varinvalias's position
    ((N, d) or (N,) for d = 1; NumPy arrays or torch tensors), and
        alpha (1e-10): ridge added to K's diagonal, >= 0;
        eps (1e-6): absolute tolerance, stop when |b - (alpha I + K) a| <= eps
            (KeOps' rule; Frobenius norm over all columns);
        rtol (0): also stop when the residual is <= rtol |b|;
        maxiter (1000): CG iterations at most; a RuntimeWarning when reached;
        precond (None): "nystrom" (with landmarks = m, default 100, or an
            index array, and seed), "block_jacobi" (with blocks = (C, 2)
            [start, end) ranges of clusters of the sorted points, see
            pykp.cluster), or a callable r -> P^-1 r;
        callback: called as callback(iteration, residual_norm).
    Returns a, shaped like b. self.info is the last solve's SolveInfo.
    torch tensors: differentiable w.r.t. b and every other input (the
    implicit-function rule, see the module doc), to any order.
    """

    def __init__(
        self,
        formula,
        aliases,
        varinvalias,
        axis=0,
        dtype_acc="auto",
        use_double_acc=False,
        sum_scheme="auto",
        enable_chunks=True,
        rec_multVar_highdim=False,
        dtype=None,
        cuda_type=None,
        use_fast_math=None,
    ):
        self.genred = Genred(formula, aliases, reduction_op="Sum", axis=axis, dtype_acc=dtype_acc,
                             use_double_acc=use_double_acc, sum_scheme=sum_scheme, enable_chunks=enable_chunks,
                             rec_multVar_highdim=rec_multVar_highdim, dtype=dtype, cuda_type=cuda_type,
                             use_fast_math=use_fast_math)
        self.key = self.genred.key
        f = _lookup(self.key)
        aliases = self.genred.aliases
        pos = _varinv_position(varinvalias, aliases, f)
        if not 0 <= pos < f.nargs or f.args[pos] is None:
            raise KpValueError("pykp: varinvalias %r (position %d) is not an argument of the formula" % (varinvalias, pos))
        want = KP_VAR_J if f.axis == 1 else KP_VAR_I
        if f.args[pos].cat != want:
            raise KpValueError(
                "pykp: varinvalias %r must be a %s variable: the solve's unknown is indexed by the reduced axis (axis=%d)"
                % (varinvalias, "Vj" if want == KP_VAR_J else "Vi", f.axis)
            )
        if f.args[pos].dim != f.out_dim:
            raise KpValueError(
                "pykp: varinvalias %r has dimension %d but the formula's output has %d: K must be square"
                % (varinvalias, f.args[pos].dim, f.out_dim)
            )
        self.varinvpos = pos
        self.axis = axis
        self.info = None

    def __call__(
        self,
        *args,
        backend="auto",
        device_id=-1,
        alpha=1e-10,
        eps=1e-6,
        ranges=None,
        rtol=0.0,
        maxiter=1000,
        precond=None,
        landmarks=100,
        blocks=None,
        seed=0,
        callback=None,
    ):
        opts = self.genred.options.with_call(backend=backend, device_id=device_id, ranges=ranges)
        opts.check(args)
        cfg = self._config(alpha, eps, rtol, maxiter, precond, landmarks, blocks, seed, callback)
        cfg.ranges = opts.kp_ranges
        f = _lookup(self.key)
        if len(args) != f.nargs:
            raise KpValueError("pykp: the formula takes %d arguments, got %d" % (f.nargs, len(args)))
        args = list(args)
        b = args[self.varinvpos]
        if not is_array(b):
            raise KpTypeError("pykp: b (argument %d) must be an array, got %s" % (self.varinvpos, type(b).__name__))
        flat = b.ndim == 1
        if flat:
            args[self.varinvpos] = b.reshape(-1, 1)
        b2 = args[self.varinvpos]
        if b2.ndim != 2:
            raise KpNotImplementedError("pykp: KernelSolve takes b of shape (N, d) (no batch dimensions), got %s"
                                        % (tuple(b.shape),))
        if b2.shape[1] != f.out_dim:
            raise KpValueError("pykp: b must have %d columns, got %d" % (f.out_dim, b2.shape[1]))
        self._check_square(f, args, b2.shape[0])
        if any(_is_tensor(a) and a.requires_grad for a in args) and torch.is_grad_enabled():
            a = _KernelSolveFn.apply(cfg, *args)
        else:
            a, _ = _solve_plain(cfg, args)
        return a.reshape(b.shape) if flat else a

    def _config(self, alpha, eps, rtol, maxiter, precond, landmarks, blocks, seed, callback) -> _Config:
        for name, v in (("alpha", alpha), ("eps", eps), ("rtol", rtol)):
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(v) or v < 0:
                raise KpValueError("pykp: %s must be a finite number >= 0, got %r" % (name, v))
        if eps == 0 and rtol == 0:
            raise KpValueError("pykp: eps or rtol must be > 0 (the stopping tolerance)")
        if isinstance(maxiter, bool) or not isinstance(maxiter, (int, np.integer)) or maxiter < 1:
            raise KpValueError("pykp: maxiter must be a positive integer, got %r" % (maxiter,))
        if precond is not None and not callable(precond) and precond not in ("nystrom", "block_jacobi"):
            raise KpValueError("pykp: precond must be None, 'nystrom', 'block_jacobi' or a callable, got %r" % (precond,))
        if precond == "nystrom" and alpha == 0:
            raise KpValueError("pykp: precond='nystrom' needs alpha > 0 (it preconditions alpha*I + K)")
        return _Config(key=self.key, pos=self.varinvpos, alpha=float(alpha), eps=float(eps), rtol=float(rtol),
                       maxiter=int(maxiter), scheme=self.genred.options.scheme, ranges=None, precond=precond,
                       landmarks=landmarks, blocks=blocks, seed=seed, callback=callback, owner=self)

    def _check_square(self, f, args, n):
        rowcat = KP_VAR_I if f.axis == 1 else KP_VAR_J
        for k, a in enumerate(args):
            info = f.args[k]
            if info is None or k == self.varinvpos:
                continue
            if info.cat != KP_VAR_PARAM and is_array(a):
                if a.ndim > 2:
                    raise KpNotImplementedError("pykp: KernelSolve does not take batch dimensions (argument %d)" % k)
                rows = a.shape[0]
                if info.cat == rowcat and rows != n:
                    raise KpValueError(
                        "pykp: K must be square: argument %d has %d rows but b has %d (N != M)" % (k, rows, n)
                    )
                if info.cat != rowcat and rows != n:
                    raise KpValueError(
                        "pykp: argument %d has %d rows but b, a variable of the same axis, has %d" % (k, rows, n)
                    )

    def linear_operator(self, *args, alpha=1e-10):
        """alpha I + K as a scipy.sparse.linalg.LinearOperator on flattened
        (N d,) vectors (b's place in args is ignored), e.g. for scipy's cg."""
        from scipy.sparse.linalg import LinearOperator

        f = _lookup(self.key)
        b = args[self.varinvpos]
        n, d = b.shape[0], f.out_dim
        op = KernelOperator(self.key, [_detach(a) for a in args], self.varinvpos, self.genred.options.scheme)

        def mv(v):
            v = np.asarray(v, dtype=np.float64).reshape(n, d)
            return (_to_numpy64(op(_like(v, b))) + alpha * v).reshape(n * d)

        return LinearOperator(shape=(n * d, n * d), dtype=np.float64, matvec=mv, rmatvec=mv)


_lookup = formula


# ----------------------------------------------------------------- LazyTensor.solve


def lazy_solve(K, other, var=None, call=True, alpha=1e-10, **kwargs):
    """K.solve(b, alpha=...): the solution a of (alpha I + K) a = b, i.e.
    sum_j K_ij a_j + alpha a_i = b_i (KeOps' LazyTensor.solve).

    K: a LazyTensor of shape (N, N) and vector dimension 1 (a scalar kernel),
    or with var, a LazyTensor linear in the variable var (a j-variable
    already inside K, of b's dimension). other: b, an array (N, d) or (N,)
    (indexed by i, as in KeOps) or a LazyTensor variable Vi(b) / Vj(b) (the
    unknown is then indexed by the other axis). kwargs: KernelSolve's call
    options (eps, rtol, maxiter, precond, landmarks, blocks, ...). Returns a,
    shaped like b; differentiable with torch like KernelSolve."""
    from .lazytensor import LazyTensor, _Var, _uids

    if not call:
        raise KpNotImplementedError("pykp: LazyTensor.solve(call=False) is not supported; call it with b")
    if K.batchdims:
        raise KpNotImplementedError("pykp: LazyTensor.solve does not take batch dimensions")
    if isinstance(other, LazyTensor):
        if len(other.vars) != 1 or not other.formula.startswith("@"):
            raise KpValueError("pykp: solve's right-hand side must be an array or a single LazyTensor variable")
        (v,) = other.vars.values()
        if v.cat == KP_VAR_PARAM:
            raise KpValueError("pykp: solve's right-hand side must be indexed by i or j, not a parameter")
        b, out_cat = v.value, v.cat
    elif is_array(other):
        b, out_cat = other, KP_VAR_I
    else:
        raise KpTypeError("pykp: solve's right-hand side must be an array or a LazyTensor, got %s" % type(other).__name__)
    flat = b.ndim == 1
    b2 = b.reshape(-1, 1) if flat else b
    if b2.ndim != 2:
        raise KpNotImplementedError("pykp: solve takes b of shape (N, d), got %s" % (tuple(b.shape),))
    var_cat = KP_VAR_J if out_cat == KP_VAR_I else KP_VAR_I
    axis = 1 if var_cat == KP_VAR_J else 0
    n_out = K.ni if axis == 1 else K.nj
    n_red = K.nj if axis == 1 else K.ni
    for what, nn in (("rows", n_out), ("columns", n_red)):
        if nn is not None and nn != b2.shape[0]:
            raise KpValueError("pykp: K has %d %s but b has %d: solve needs a square K (N = M = len(b))" % (nn, what, b2.shape[0]))
    if var is None:
        if K.ndim != 1:
            raise KpValueError("pykp: K.solve(b) needs K of vector dimension 1 (a scalar kernel), got %d" % K.ndim)
        unknown = LazyTensor()
        unknown._leaf(b2, var_cat, b2.shape[1])
        if var_cat == KP_VAR_J:
            unknown.nj = b2.shape[0]
        else:
            unknown.ni = b2.shape[0]
        unknown.backend, unknown.code = K.backend, K.code
        expr = K * unknown
        uid = next(iter(unknown.vars))
    else:
        if not isinstance(var, LazyTensor) or len(var.vars) != 1 or not var.formula.startswith("@"):
            raise KpValueError("pykp: var must be a LazyTensor variable (Vi or Vj) used in K")
        uid = next(iter(var.vars))
        if uid not in K.vars:
            raise KpValueError("pykp: var is not a variable of K")
        if var.vars[uid].cat != var_cat:
            raise KpValueError("pykp: var must be indexed by the axis K reduces over (%s)" % ("j" if axis == 1 else "i"))
        expr = K._new(K.formula, K.ndim)
        expr.vars[uid] = _Var(b2, var_cat, var.vars[uid].dim)
    texts, args = expr._text()
    order = list(dict.fromkeys(int(m) for m in _placeholders(expr.formula)))
    pos = order.index(uid)
    solver = KernelSolve(texts[0], [], pos, axis=axis)
    if K.ranges is not None and "ranges" not in kwargs:
        kwargs["ranges"] = K.ranges
    a = solver(*args, alpha=alpha, **kwargs)
    K.info = solver.info
    return a.reshape(b.shape) if flat else a


def _placeholders(text):
    from .lazytensor import _PLACEHOLDER

    return [m.group(1) for m in _PLACEHOLDER.finditer(text)]
