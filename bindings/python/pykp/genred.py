"""
genred.py -- Genred (KeOps calling conventions) and the autograd bridge.

Every reduction of pykp, from Genred, LazyTensor or kernel_product, ends in
`reduce(key, args, ...)`: key names a formula in the per-thread registry, args
are arrays in the layout of the formula's arguments. With torch tensors that
need gradients it goes through `_KpFunction`, whose backward runs libkp's own
gradient reductions (kp_formula_grad) through `_KpFunction` again, so that
backward is itself differentiable, to any order. The gradients of one backward
pass that take the same arguments run together through `_KpJointFunction`: one
joint libkp plan (kp_plan_new_joint), one pass over the pairs for the Sums among
them; its backward is made of the same Functions.
"""
import operator
import os

from . import _arrays, _call, _compile, _lib, _options, _ranges
from ._arrays import torch
from ._call import canonical
from ._lib import KP_VAR_I, KP_VAR_J, KP_VAR_PARAM, KpNotImplementedError, KpValueError, formula

# ----------------------------------------------------------------- reduction names

# KeOps name (and accepted aliases) -> libkp reduction: libkp's names, the same
# without underscores (KeOps accepts "MinArgMin"), and KeOps' other spellings.
_REDUCTION_NAMES = {n: n for n in _lib.REDUCTIONS}
_REDUCTION_NAMES.update({n.replace("_", ""): n for n in _lib.REDUCTIONS})
_REDUCTION_NAMES.update({"LogSumExpWeight": "LogSumExp", "SoftMax": "SumSoftMaxWeight"})
_K_REDUCTIONS = _lib.K_REDUCTIONS


def reduction_text(formula, reduction_op, axis, opt_arg=None, formula2=None):
    """The libkp text of a KeOps-style (formula, reduction_op, axis) triple."""
    if not isinstance(formula, str) or not formula.strip():
        raise KpValueError("pykp: the formula must be a non-empty string, got %r" % (formula,))
    red = _REDUCTION_NAMES.get(reduction_op)
    if red is None:
        raise KpValueError(
            "pykp: unknown reduction_op %r; expected one of %s" % (reduction_op, ", ".join(sorted(_REDUCTION_NAMES)))
        )
    if axis not in (0, 1) or isinstance(axis, bool):
        raise KpValueError("pykp: axis must be 0 (reduce over i) or 1 (reduce over j), got %r" % (axis,))
    if red in _K_REDUCTIONS:
        if opt_arg is None or isinstance(opt_arg, bool) or int(opt_arg) != opt_arg or opt_arg < 1:
            raise KpValueError("pykp: reduction %s needs opt_arg = K, a positive integer, got %r" % (reduction_op, opt_arg))
        return "%s_Reduction(%s,%d,%d)" % (red, formula, int(opt_arg), axis)
    if red == "SumSoftMaxWeight":
        if formula2 is None:
            raise KpValueError("pykp: reduction %s needs formula2 (the weights)" % reduction_op)
        return "SumSoftMaxWeight_Reduction(%s,%d,%s)" % (formula, axis, formula2)
    if red == "LogSumExp" and formula2 is not None:
        # log sum_j exp(f_ij) g_ij = LogSumExp(f_ij + log g_ij), for g > 0
        return "LogSumExp_Reduction((%s)+Log(%s),%d)" % (formula, formula2, axis)
    if reduction_op == "LogSumExpWeight":
        raise KpValueError("pykp: reduction LogSumExpWeight needs formula2 (the weights)")
    return "%s_Reduction(%s,%d)" % (red, formula, axis)


# ----------------------------------------------------------------- autograd

# Backward passes run the gradients that take the same arguments through one
# joint libkp plan (one pass over the pairs for all of them). False: one
# reduction per gradient, as before joint plans (PYKP_JOINT_BACKWARD=0 at import).
JOINT_BACKWARD = os.environ.get("PYKP_JOINT_BACKWARD", "1").strip().lower() not in ("0", "false", "no", "off")

if torch is not None and int(torch.__version__.split(".")[0]) < 2:
    raise ImportError(
        "pykp needs torch >= 2.0 (torch.func's setup_context Functions; torch.compile's custom operators need "
        ">= 2.4), found torch %s; upgrade torch or uninstall it to use pykp with NumPy" % torch.__version__
    )

if torch is not None:

    class _Node:
        """What a _KpFunction call needs besides its tensors: the formula key,
        the sizes that no argument may tell (nx, ny), the summation scheme and
        the block-sparse ranges (a _ranges.Ranges or None). Derived formulas
        (gradients, the lse, the indexed forward) keep the same ranges: libkp
        reads the triple of each formula's axis, the transposed one for the
        gradients that reduce over the other axis."""

        __slots__ = ("key", "nx", "ny", "scheme", "ranges", "call", "pairs")

        def __init__(self, key, nx, ny, scheme=None, ranges=None):
            self.key = key
            self.nx = nx
            self.ny = ny
            self.scheme = scheme
            self.ranges = ranges
            # the _call.Call that `reduce` prepared for these arguments, taken (once) by
            # _KpFunction.forward instead of preparing the same arrays again
            self.call = None
            # the forward's number of pairs when its Call tells it (no batch dimensions),
            # for _will_use: None otherwise (_pairs reads the arguments' shapes)
            self.pairs = None

        def derived(self, *op):
            return _Node((self.key,) + op, self.nx, self.ny, self.scheme, self.ranges)

    def _fit_grad(g, arg, cat):
        """Gradient g of libkp, shaped (batch_out..., rows, d) or (batch_out..., 1, d)
        for a parameter, brought to the shape of the argument (batch dims it
        broadcast are summed). A complex call writes complex gradients (interleaved
        reals) of even width: a real argument gets their reals."""
        if g.is_complex() and not arg.is_complex():
            g = torch.view_as_real(g).flatten(-2)
        if cat == KP_VAR_PARAM:
            g = g.squeeze(-2)
            base = 1
        else:
            base = 2
        nbo = g.ndim - base
        nba = arg.ndim - base
        if nbo > 0:
            if nba == 0:
                g = g.sum(dim=tuple(range(nbo)))
            else:
                dims = tuple(i for i in range(nbo) if arg.shape[i] == 1 and g.shape[i] != 1)
                if dims:
                    g = g.sum(dim=dims, keepdim=True)
        if g.shape != arg.shape:
            g = g.reshape(arg.shape)
        return g

    _will_execute = getattr(torch._C, "_will_engine_execute_node", None)

    # The query costs microseconds, but milliseconds when torch answers with an
    # exception (a captured leaf under torch.autograd.grad): only worth it when
    # the gradient reduction it may save is large.
    _WILL_USE_MIN_PAIRS = 1 << 24

    def _pairs(f, args):
        ni = nj = nb = 1
        for info, a in zip(f.args, args):
            if info is None or a is None:
                continue
            if info.cat == KP_VAR_I:
                ni = max(ni, a.shape[-2])
            elif info.cat == KP_VAR_J:
                nj = max(nj, a.shape[-2])
            if a.ndim > 2:
                nb = max(nb, a[..., 0, 0].numel())
        return ni * nj * nb

    def _will_use(ctx, k):
        """False when the autograd engine will not use the gradient of input k in
        this backward pass (e.g. torch.autograd.grad(..., inputs=[q]) does not
        need the gradient flowing to p): each gradient is a full reduction, so
        skipping unused ones matters. Best effort, through a private torch call
        when it exists: leaves under torch.autograd.grad (not supported by
        torch 1.13) and any failure count as used."""
        if _will_execute is None or ctx is None or ctx.kp_pairs < _WILL_USE_MIN_PAIRS:
            return True
        try:
            # next_functions has one entry per tensor input (not for node or None)
            j = sum(1 for a in ctx.kp_args[:k] if a is not None)
            fn = ctx.next_functions[j][0]
            if fn is None:
                return True
            cache = ctx.kp_will
            r = cache.get(id(fn))
            if r is None:
                try:
                    r = cache[id(fn)] = bool(_will_execute(fn))
                except RuntimeError:  # a leaf captured by torch.autograd.grad: needed
                    r = cache[id(fn)] = True
            return r
        except Exception:
            return True

    _WITH_INDICES = _lib.WITH_INDICES  # forward also computes the indices, for backward
    _INDEXED = _lib.INDEXED  # outputs (values, indices)
    _NEEDS_OUTPUT = ("LogSumExp", "SumSoftMaxWeight")  # gradient takes the forward output O

    def _joinable(g):
        """A gradient formula the joint pass of libkp takes: a Sum (a parameter
        gradient, whose rows libkp sums, included)."""
        return g.reduction == "Sum" and g.out_dim > 0

    def _input_grads(ctx, node, args, out, idx, G, needs):
        """The gradients, w.r.t. each of args, of <out, G> for out = Red(F)(args)
        of the formula node.key (idx: the forward's indices, Min/Max/KMin):
        one libkp gradient reduction per input that needs one (needs[k], and
        _will_use), run through _KpFunction / _KpJointFunction so that they are
        differentiable again. Gradients taking the same arguments (same number
        of extra inputs: G, the forward output, the lse) run through one joint
        plan when there are 2 or more of them (JOINT_BACKWARD). Returns a list
        with one gradient (or None) per argument."""
        f = formula(node.key)
        n = f.nargs
        grads = [None] * n
        jobs = []
        for k in range(n):
            info = f.args[k]
            if not needs[k] or info is None or args[k] is None or not _will_use(ctx, k):
                continue
            gnode = node.derived("grad", k)
            jobs.append((k, gnode, formula(gnode.key)))
        if not jobs:
            return grads
        extra = _grad_extras(f, node, args, out, idx, G, any(g.nargs > n + 2 for _, _, g in jobs))
        groups = {}  # gradient formulas by their arguments (their number fixes which extras they take)
        for job in jobs:
            groups.setdefault(job[2].nargs, []).append(job)
        for ng, group in groups.items():
            gargs = (args + extra)[:ng]
            gargs += [None] * (ng - len(gargs))
            joinable = JOINT_BACKWARD and _lib.has_joint_plans() and not _compile.tracing(gargs)
            joint = [job for job in group if _joinable(job[2])] if joinable else []
            if len(joint) >= 2:
                nparts = -(-len(joint) // _lib.KP_MAX_JOINT)  # parts of 2 to KP_MAX_JOINT formulas
                for i in range(nparts):
                    part = joint[i * len(joint) // nparts : (i + 1) * len(joint) // nparts]
                    keys = tuple(gnode.key for _, gnode, _ in part)
                    if _untracked():
                        outs = _call.run_joint(_lib.joint(keys), gargs, node.nx, node.ny, node.scheme, node.ranges)
                    else:
                        jnode = _JointNode(keys, node.nx, node.ny, node.scheme, node.ranges)
                        outs = _function_apply(_KpJointFunction, jnode, *gargs)
                    for (k, _, _), gk in zip(part, outs):
                        grads[k] = _fit_grad(gk, args[k], f.args[k].cat)
            else:
                joint = []
            done = {job[0] for job in joint}
            for k, gnode, g in group:
                if k not in done:
                    grads[k] = _fit_grad(_apply(gnode, *gargs), args[k], f.args[k].cat)
        return grads

    def _grad_extras(f, node, args, out, idx, G, with_lse):
        """The arguments the gradient formulas of f take after f's own: G, then
        the forward output (LogSumExp, SumSoftMaxWeight; per row when f sums
        its rows) or the selected indices as numbers (Min/Max/KMin), then the
        log-sum-exp of SumSoftMaxWeight (with_lse)."""
        if f.reduction in _NEEDS_OUTPUT:
            if f.sums_rows:  # the gradient needs the per-row output, not the summed one
                second = _apply(node.derived("rows"), *args[: formula((node.key, "rows")).nargs])
            else:
                second = out
        elif idx is not None:
            # the selected indices, as numbers (idx's device): float32 for float16 calls, which hold
            # integers exactly only up to 2048, and real for complex ones
            second = _arrays.torch_cast(idx, torch.float32 if G.dtype in (torch.float16, torch.complex64)
                                        else torch.float64 if G.dtype == torch.complex128 else G.dtype)
        else:
            second = None
        extra = [G, second]
        if with_lse:
            extra.append(_apply(node.derived("lse"), *args))
        return extra

    def _begin_backward(ctx, f, args, pairs=None):
        ctx.kp_args = args
        ctx.kp_will = {}
        ctx.kp_pairs = _pairs(f, args) if pairs is None else pairs

    def _end_backward(ctx):
        ctx.kp_args = ctx.kp_will = None  # no references kept past this pass (retain_graph)

    def _split(f, r):
        """(values, indices) from what _KpFunction returns for formula f."""
        if f.out_dim and f.out_index_dim:
            return r[0], r[1]
        return (r, None) if f.out_dim else (None, r)

    def _eager_forward(node):
        """The formula _KpFunction runs for node: with the indices when the
        backward of a Min/Max/KMin needs them."""
        f = formula(node.key)
        return formula((node.key, "idx")) if f.reduction in _WITH_INDICES else f

    def _untracked():
        """Whether a gradient reduction needs no autograd node: a backward pass
        that does not build a graph (create_graph=False runs it with grad
        disabled), outside torch.func transforms. Its Function would only
        cost the call its apply."""
        return not torch.is_grad_enabled() and _transforms_active is not None and not _transforms_active()

    def _apply(node, *args):
        """_KpFunction.apply, or the pykp::reduce operator while torch.compile
        traces (fake tensors: no data to hand to libkp). Returns what
        _KpFunction returns."""
        if _compile.tracing(args):
            return _compile.apply_op(node, args)
        return _function_apply(_KpFunction, node, *args)

    _transforms_active = getattr(torch._C, "_are_functorch_transforms_active", None)
    _unwrap_if_dead = getattr(getattr(torch._C, "_functorch", None), "unwrap_if_dead", None)

    def _function_apply(cls, *args):
        """cls.apply(*args) for pykp's Functions. Outside torch.func transforms,
        Function.apply binds the arguments to forward's signature (through
        inspect.signature, tens of microseconds per call) when setup_context
        is defined, then calls the C apply: pykp's forwards take (node, *args)
        without defaults, so the binding changes nothing and is skipped here;
        the rest is what Function.apply does (tensors left over from a finished
        transform unwrapped, as torch._functorch.utils.unwrap_dead_wrappers does)."""
        if _transforms_active is None or _unwrap_if_dead is None or _transforms_active():
            return cls.apply(*args)
        Tensor = torch.Tensor
        return super(torch.autograd.Function, cls).apply(*[_unwrap_if_dead(a) if isinstance(a, Tensor) else a
                                                          for a in args])

    def _vmap_args(f, in_dims, args):
        """args with the vmapped dimension moved first, as libkp's leading batch
        dimension (extent 1 for arguments that are not vmapped, which libkp
        broadcasts), every argument with the same number of batch dimensions."""
        nb = 0
        for a, d, info in zip(args, in_dims, f.args):
            if a is not None and info is not None:
                base = 1 if info.cat == KP_VAR_PARAM else 2
                nb = max(nb, a.ndim - base - (d is not None))
        out = []
        for a, d, info in zip(args, in_dims, f.args):
            if a is None or info is None:
                out.append(a)
                continue
            a = a.unsqueeze(0) if d is None else a.movedim(d, 0)
            base = 1 if info.cat == KP_VAR_PARAM else 2
            have = a.ndim - 1 - base
            if have < nb:
                a = a.reshape(a.shape[:1] + (1,) * (nb - have) + a.shape[1:])
            out.append(a)
        return out

    class _KpFunction(torch.autograd.Function):
        """out = Red(F)(args); backward: libkp gradient reductions (see
        _input_grads), run through _KpFunction or _KpJointFunction again
        (differentiable to any order). Returns the values, the indices, or
        both (Min_ArgMin, and Min/Max/KMin whose backward needs the indices).

        torch.func: forward takes no ctx (setup_context), `vmap` maps the
        vmapped dimension to a leading libkp batch dimension (one call, no
        loop), `jvp` is the forward derivative through the gradient formulas
        (linear in their incoming gradient G, see _jvp), so vmap, grad, jacrev,
        jacfwd and hessian compose."""

        @staticmethod
        def forward(node, *args):
            run_f = _eager_forward(node)
            call = node.call
            node.call = None  # the node lives on in the graph: no reference to the arguments' Call
            if call is None or len(call.arrays) != len(args) or not all(map(operator.is_, call.arrays, args)):
                call = _call.prepare(run_f, args, nx=node.nx, ny=node.ny)
            out, idx = _call.run(run_f, call, None, node.scheme, node.ranges)
            node.pairs = max(call.nx, 1) * max(call.ny, 1) if call.flat else None
            if out is not None and idx is not None:
                return out, idx
            return out if out is not None else idx

        @staticmethod
        def setup_context(ctx, inputs, output):
            node, args = inputs[0], inputs[1:]
            out, idx = _split(_eager_forward(node), output)
            ctx.node = node
            if idx is not None:
                ctx.mark_non_differentiable(idx)
            ctx.save_for_backward(*args, out, idx)
            ctx.save_for_forward(*args, out, idx)

        @staticmethod
        def backward(ctx, G, *unused):
            node = ctx.node
            saved = ctx.saved_tensors
            args, out, idx = list(saved[:-2]), saved[-2], saved[-1]
            if out is None:  # ArgMin/ArgMax: nothing to differentiate
                return (None,) * (len(args) + 1)
            _begin_backward(ctx, formula(node.key), args, node.pairs)
            try:
                grads = _input_grads(ctx, node, args, out, idx, G, ctx.needs_input_grad[1:])
            finally:
                _end_backward(ctx)
            return (None,) + tuple(grads)

        @staticmethod
        def jvp(ctx, _node_tangent, *tangents):
            saved = ctx.saved_tensors
            args, out, idx = list(saved[:-2]), saved[-2], saved[-1]
            t = None if out is None else _jvp(ctx.node, args, out, idx, tangents)
            if out is not None and idx is not None:
                return t, None
            return t

        @staticmethod
        def vmap(info, in_dims, node, *args):
            f = formula(node.key)
            args = _vmap_args(f, in_dims[1:], args)
            if node.ranges is not None:  # the vmapped dimension is the outermost batch: the ranges repeat
                node = _Node(node.key, node.nx, node.ny, node.scheme, _vmapped_ranges(f, node, args))
            r = _KpFunction.apply(node, *args)
            return r, ((0, 0) if isinstance(r, tuple) else 0)

    def _vmapped_ranges(f, node, args):
        """node's ranges for args whose leading dimension is vmap's (_vmap_args):
        copy v of the 6-tuple indexes the flattened rows of slice v."""
        V, B, n_of = 1, 1, {KP_VAR_I: node.nx, KP_VAR_J: node.ny}
        bshape = ()
        for a, info in zip(args, f.args):
            if a is None or info is None:
                continue
            base = 1 if info.cat == KP_VAR_PARAM else 2
            V = max(V, a.shape[0])
            bshape = torch.broadcast_shapes(bshape, tuple(a.shape[1 : a.ndim - base]))
            if info.cat != KP_VAR_PARAM:
                n_of[info.cat] = a.shape[-2]
        for e in bshape:
            B *= e
        if n_of[KP_VAR_I] is None or n_of[KP_VAR_I] < 0 or n_of[KP_VAR_J] is None or n_of[KP_VAR_J] < 0:
            raise KpNotImplementedError("pykp: ranges= under torch.func.vmap needs Vi and Vj arguments")
        return node.ranges.repeated(V, B * n_of[KP_VAR_I], B * n_of[KP_VAR_J])

    def _jvp(node, args, out, idx, tangents):
        """Forward derivative of out = Red(F)(args) along tangents: sum over k
        of J_k t_k. The gradient reduction g_k(G) = J_k^T G of _input_grads is
        linear in G, so J_k t_k = d<g_k(G), t_k>/dG: the gradient of libkp's
        gradient formula w.r.t. its G argument (taken at G = 0), again a
        libkp reduction."""
        f = formula(node.key)
        n = f.nargs
        total = None
        G = torch.zeros_like(out)
        for k, tk in enumerate(tangents):
            if tk is None or k >= n or f.args[k] is None or args[k] is None:
                continue
            gnode = node.derived("grad", k)
            g = formula(gnode.key)
            extra = _grad_extras(f, node, args, out, idx, G, g.nargs > n + 2)
            gargs = (args + extra)[: g.nargs]
            gargs += [None] * (g.nargs - len(gargs))
            if f.args[k].cat == KP_VAR_PARAM:  # the gradient of a parameter is a summed row, (batch..., 1, d)
                tk = tk.unsqueeze(-2)
            needs = [i == n for i in range(g.nargs)]
            # a SumSoftMaxWeight gradient (of a LogSumExp or SumSoftMaxWeight) is differentiated with its output
            gout = _apply(gnode, *gargs) if g.reduction in _NEEDS_OUTPUT else None
            jk = _input_grads(None, gnode, gargs, gout, None, tk, needs)[n]
            total = jk if total is None else total + jk
        return total if total is not None else torch.zeros_like(out)

    class _JointNode:
        """What a _KpJointFunction call needs besides its tensors: the keys of
        its formulas (taking the same arguments) and the sizes nx, ny."""

        __slots__ = ("keys", "nx", "ny", "scheme", "ranges")

        def __init__(self, keys, nx, ny, scheme=None, ranges=None):
            self.keys = keys
            self.nx = nx
            self.ny = ny
            self.scheme = scheme
            self.ranges = ranges

    class _KpJointFunction(torch.autograd.Function):
        """outs[k] = Red_k(F_k)(args) for the formulas of node.keys (Sums, e.g.
        the gradients of one forward w.r.t. several inputs), computed by one
        joint libkp plan: one pass over the pairs (i, j) for all of them. The
        backward sums, over the outputs that received a gradient, what each
        formula's own backward gives (_input_grads, differentiable again)."""

        @staticmethod
        def forward(ctx, node, *args):
            outs = _call.run_joint(_lib.joint(node.keys), args, node.nx, node.ny, node.scheme, node.ranges)
            ctx.node = node
            ctx.set_materialize_grads(False)  # outputs without a gradient: G is None, no reduction
            ctx.save_for_backward(*args, *outs)
            return tuple(outs)

        @staticmethod
        def backward(ctx, *Gs):
            node = ctx.node
            saved = ctx.saved_tensors
            nargs = len(saved) - len(node.keys)
            args, outs = list(saved[:nargs]), saved[nargs:]
            needs = ctx.needs_input_grad[1:]
            total = [None] * nargs
            _begin_backward(ctx, _lib.joint(node.keys), args)
            try:
                for key, out, G in zip(node.keys, outs, Gs):
                    if G is None:
                        continue
                    sub = _Node(key, node.nx, node.ny, node.scheme, node.ranges)
                    for k, g in enumerate(_input_grads(ctx, sub, args, out, None, G, needs)):
                        if g is not None:
                            total[k] = g if total[k] is None else total[k] + g
            finally:
                _end_backward(ctx)
            return (None,) + tuple(total)


def reduce(key, args, nx=-1, ny=-1, what="argument", out=None, scheme=None, ranges=None):
    """Runs the registry formula `key` on user arrays. Returns (values, indices)
    (either may be None), arrays of the arguments' kind; differentiable with
    torch when an argument requires a gradient. scheme: float32 summation
    scheme for this call and its backward passes (None: the global setting).
    ranges: block-sparse ranges (KeOps' 6-tuple or a _ranges.Ranges) for this
    call and its backward passes, None for every pair.

    While torch.compile traces, the call is the pykp::reduce operator (before
    anything here that Dynamo could not trace); under torch.func transforms
    it goes through _KpFunction (its vmap and jvp rules)."""
    ranges = _ranges.prepare(ranges)
    if torch is not None and _compile.tracing(args):
        if ranges is not None:
            raise KpNotImplementedError("pykp: ranges= cannot be used inside torch.compile")
        return _compile.reduce_op(key, args, nx, ny, scheme)
    f = formula(key)
    if torch is not None and _compile.functorch_wrapped(args):
        _, _, args = canonical(f, args, what)
        if out is not None:
            raise KpValueError("pykp: out= cannot be used under torch.func transforms")
        node = _Node(key, nx, ny, scheme, ranges)
        vals, idx = _split(_eager_forward(node), _KpFunction.apply(node, *args))
        return vals, (idx if f.out_index_dim else None)
    call = _call.prepare(f, args, what, nx, ny)
    if not (call.requires_grad and torch.is_grad_enabled()) or not f.out_dim:
        # (ArgMin, ArgMax, ArgKMin: integer outputs, nothing to differentiate)
        return _call.run(f, call, out, scheme, ranges)
    if out is not None:
        raise KpValueError("pykp: out= cannot be used when an input requires a gradient")
    node = _Node(key, nx, ny, scheme, ranges)
    run_f = _eager_forward(node)
    if run_f is f:
        node.call = call
    vals, idx = _split(run_f, _function_apply(_KpFunction, node, *call.arrays))
    return vals, (idx if f.out_index_dim else None)


# ----------------------------------------------------------------- output layout


def postprocess(vals, idx, reduction, K=None):
    """KeOps output conventions: Arg* -> int64 indices; Min_ArgMin -> (values,
    indices); KMin family -> (..., rows, K, D), squeezed to (..., rows, K) when D = 1."""
    if reduction in ("ArgMin", "ArgMax"):
        return idx
    if reduction in ("Min_ArgMin", "Max_ArgMax"):
        return vals, idx
    if reduction in _K_REDUCTIONS:

        def split(a):
            shape = tuple(a.shape[:-1]) + (K, a.shape[-1] // K)
            a = a.reshape(shape)
            if shape[-1] == 1:
                a = a.reshape(shape[:-1])
            return a

        if reduction == "KMin":
            return split(vals)
        if reduction == "ArgKMin":
            return split(idx)
        return split(vals), split(idx)
    return vals


# ----------------------------------------------------------------- Genred


_lookup = formula  # Genred.__init__'s `formula` argument shadows the function


class Genred:
    """A generic reduction, with KeOps' calling conventions.

    >>> gauss = Genred("Exp(-SqDist(x,y)*g)*b", ["x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(1)"],
    ...                reduction_op="Sum", axis=1)
    >>> a = gauss(x, y, g, b)         # a_i = sum_j exp(-g|x_i-y_j|^2) b_j, shape (N, 1)

    Called with one array per alias: NumPy arrays (result: NumPy) or torch
    tensors (result: torch, differentiable for Sum, LogSumExp and
    SumSoftMaxWeight, and usable under torch.func and torch.compile), all on
    one device: CPU tensors run on libkp's CPU engine, CUDA tensors on its
    CUDA engine, on their device and torch's current stream (backend= and
    device_id= may only confirm that). Vi/Vj arrays are (n, d) or
    (batch..., n, d), parameters (d,) or (batch..., d); all float32 or all
    float64. Index outputs are int64.

    Parameters
    ----------
    formula, aliases : str, list of str
        KeOps syntax ("x = Vi(3)", "y = Vj(0,3)", "p = Pm(1)").
    reduction_op : str
        Sum, LogSumExp, SumSoftMaxWeight (with formula2), Min, Max, ArgMin,
        ArgMax, Min_ArgMin, Max_ArgMax, KMin, ArgKMin, KMin_ArgKMin (with
        opt_arg = K); also KeOps' older names (SoftMax, MinArgMin, ...) and
        LogSumExp with formula2 (log sum_j exp(f) g, g > 0).
    axis : {0, 1}
        0 reduces over i (one row per j), 1 over j (one row per i); 0 by
        default, as in KeOps.
    sum_scheme : str
        "auto"/"block_sum" (libkp's compensated block sums), "kahan_scheme",
        "direct_sum"; use_double_acc / dtype_acc="float64" select Kahan sums
        (libkp keeps float32 accumulators). dtype/cuda_type must match the
        arrays; use_fast_math must agree with pykp.set_math_mode for CUDA
        tensors; enable_chunks and rec_multVar_highdim are checked booleans
        that only steer KeOps' code generation (pykp._options says each
        keyword's effect; docs/keops_compat.md).

    Notes
    -----
    A call takes the arrays and the keywords backend, device_id, out, nx,
    ny and ranges: KeOps' block-sparse 6-tuple (ranges_i, slices_i,
    redranges_j, ranges_j, slices_j, redranges_i) of int32/int64 NumPy
    arrays or CPU tensors (pykp.cluster.from_matrix builds it), which the
    reduction and its gradients read (docs/ranges.md).
    """

    def __init__(
        self,
        formula,
        aliases,
        reduction_op="Sum",
        axis=0,
        dtype=None,
        opt_arg=None,
        formula2=None,
        cuda_type=None,
        dtype_acc="auto",
        use_double_acc=False,
        sum_scheme="auto",
        enable_chunks=True,
        rec_multVar_highdim=False,
        use_fast_math=None,
    ):
        if isinstance(aliases, str):
            aliases = [aliases]
        aliases = tuple(str(a) for a in (aliases or ()))
        self.reduction_op = reduction_op
        self.text = reduction_text(formula, reduction_op, axis, opt_arg, formula2)
        self.aliases = aliases
        self.axis = axis
        self.opt_arg = int(opt_arg) if opt_arg is not None else None
        self.key = ("parse", self.text, aliases)
        self.reduction = _REDUCTION_NAMES[reduction_op]
        self.options = _options.Options(
            "Genred", dtype=dtype, cuda_type=cuda_type, dtype_acc=dtype_acc, use_double_acc=use_double_acc,
            sum_scheme=sum_scheme, enable_chunks=enable_chunks, rec_multVar_highdim=rec_multVar_highdim,
            use_fast_math=use_fast_math,
        )
        self._plain = self.options.confirms_nothing()
        parsed = _lookup(self.key)  # parse now: formula errors surface here
        self.nargs = parsed.nargs
        self.out_dim = parsed.out_dim or parsed.out_index_dim  # per row, before KeOps' reshaping

    def __call__(self, *args, backend="auto", device_id=-1, ranges=None, out=None, nx=None, ny=None):
        if self._plain and ranges is None and device_id == -1 and backend == "auto":
            scheme, kp_ranges = self.options.scheme, None  # nothing to confirm against the arrays
        else:
            opts = self.options.with_call(backend=backend, device_id=device_id, ranges=ranges)
            opts.check(args)
            scheme, kp_ranges = opts.scheme, opts.kp_ranges
        vals, idx = reduce(self.key, args, -1 if nx is None else nx, -1 if ny is None else ny, out=out,
                           scheme=scheme, ranges=kp_ranges)
        return postprocess(vals, idx, self.reduction, self.opt_arg)

    def __repr__(self):
        return "Genred(%r, aliases=%r)" % (self.text, list(self.aliases))

