"""
_compile.py -- pykp's reductions as the torch operator pykp::reduce, so that
torch.compile traces models calling pykp without a graph break per call.

Dynamo cannot trace pykp's Python (ctypes calls into libkp) and AOTAutograd
traces with fake tensors (no data for libkp). So while torch compiles,
`genred.reduce` calls the operator

    pykp::reduce(str key, Tensor?[] args, int nx, int ny, int scheme) -> (Tensor values, Tensor indices)

registered with torch.library.custom_op (torch >= 2.4): its fake
implementation gives the output shapes (libkp's formula facts, no libkp call
on data), its real implementation runs libkp, and its autograd formula runs
libkp's gradient reductions through the same operator (so double backward
traces too). key is the repr of the registry key of the formula (a nested
tuple of strings and integers); outputs a reduction does not have are empty
tensors. Outside torch.compile, pykp keeps its eager path (_KpFunction).
"""
import ast
from typing import List, Optional, Tuple

from . import _arrays
from ._arrays import torch
from ._lib import KP_VAR_I, KP_VAR_J, formula

HAVE_OPS = torch is not None and hasattr(torch.library, "custom_op")

if torch is not None:
    # the tensors AOTAutograd traces with (no data); other subclasses are data
    try:
        from torch._subclasses.fake_tensor import FakeTensor as _Fake
        from torch._subclasses.functional_tensor import FunctionalTensor as _Functional

        _TRACED = frozenset((_Fake, _Functional))
    except ImportError:  # pragma: no cover - torch without these (< 2.1): Dynamo's check only
        _TRACED = frozenset()
    _is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    if _is_compiling is None:  # torch < 2.3
        _is_compiling = getattr(getattr(torch, "_dynamo", None), "is_compiling", lambda: False)
    _functorch = getattr(getattr(torch._C, "_functorch", None), "is_functorch_wrapped_tensor", None)
    # None unless a torch.func transform is active: one cheap call decides for all arguments
    _transforms = getattr(getattr(torch._C, "_functorch", None), "peek_interpreter_stack", None)


def tracing(args):
    """True while torch.compile traces a call with these arguments: Dynamo
    (is_compiling) or AOTAutograd (fake / functional tensors)."""
    if not HAVE_OPS:
        return False
    if _is_compiling():
        return any(isinstance(a, torch.Tensor) for a in args)
    for a in args:  # exact types: this runs on every call, a set lookup is the cheapest test
        if type(a) in _TRACED:
            return True
    return False


def functorch_wrapped(args):
    """True when an argument is a torch.func transform's tensor (vmap's batched
    tensors, grad's tracking tensors): libkp cannot read those directly."""
    if _functorch is None or (_transforms is not None and _transforms() is None):
        return False
    for a in args:
        if isinstance(a, torch.Tensor) and _functorch(a):
            return True
    return False


_KEYS = {}


def key_of(text):
    """The registry key written as text by repr (cached)."""
    k = _KEYS.get(text)
    if k is None:
        k = _KEYS[text] = ast.literal_eval(text)
    return k


def _run_key(key):
    """The key pykp::reduce runs: with the indices when the backward of a
    Min/Max/KMin needs them."""
    from .genred import _WITH_INDICES

    return (key, "idx") if formula(key).reduction in _WITH_INDICES else key


if HAVE_OPS:

    @torch.compiler.assume_constant_result
    def _op_key(key):
        return repr(_run_key(key))

    def reduce_op(key, args, nx, ny, scheme):
        """genred.reduce while Dynamo traces: the pykp::reduce operator on the
        arguments (Python numbers become parameter tensors; positions the
        formula does not use are passed as None). Returns (values, indices),
        empty tensors where the reduction has no such output."""
        ref = None
        for a in args:
            if isinstance(a, torch.Tensor):
                ref = a
                break
        tens = []
        for a in args:
            if isinstance(a, torch.Tensor):
                tens.append(a)
            elif isinstance(a, (int, float)) and not isinstance(a, bool):
                tens.append(torch.full((1,), a, dtype=ref.dtype, device=ref.device))
            else:
                tens.append(None)
        return torch.ops.pykp.reduce(_op_key(key), tens, nx, ny, -1 if scheme is None else scheme)

    def apply_op(node, args):
        """What genred._KpFunction.apply(node, *args) returns, through the
        operator (inside a traced backward)."""
        rk = _run_key(node.key)
        vals, idx = torch.ops.pykp.reduce(repr(rk), list(args), node.nx, node.ny,
                                          -1 if node.scheme is None else node.scheme)
        f = formula(rk)
        if f.out_dim and f.out_index_dim:
            return vals, idx
        return vals if f.out_dim else idx

    def _empty(dtype, device):
        return torch.empty((0,), dtype=dtype, device=device)

    def _ref(args):
        for a in args:
            if a is not None:
                return a
        raise ValueError("pykp::reduce: no tensor among the arguments")

    @torch.library.custom_op("pykp::reduce", mutates_args=())
    def _reduce(key: str, args: List[Optional[torch.Tensor]], nx: int, ny: int, scheme: int) -> Tuple[torch.Tensor, torch.Tensor]:
        from .genred import reduce

        ref = _ref(args)
        with torch.no_grad():  # below autograd: the operator's own autograd formula differentiates it
            vals, idx = reduce(key_of(key), list(args), nx, ny, scheme=None if scheme < 0 else scheme)
        if vals is None:
            vals = _empty(ref.dtype, ref.device)
        if idx is None:
            idx = _empty(torch.int64, ref.device)
        return vals, idx

    @_reduce.register_fake
    def _reduce_fake(key, args, nx, ny, scheme):
        """Outputs with the shapes libkp gives for the arguments' shapes (fake
        tensors have no storage: only their shapes are described)."""
        from ._call import canonical, output_shapes, shape_descs

        f = formula(key_of(key))
        _, code, cargs = canonical(f, list(args))
        for info, a in zip(f.args, cargs):
            if info is not None and info.cat == KP_VAR_I:
                nx = a.shape[-2]
            elif info is not None and info.cat == KP_VAR_J:
                ny = a.shape[-2]
        vshape, ishape = output_shapes(f, code, shape_descs(f, code, cargs), nx, ny)
        ref = _ref(args)
        if vshape is None:
            vals = _empty(ref.dtype, ref.device)
        else:  # float16 or complex calls: libkp's storage dtypes, as _arrays.empty_values
            shape, vcode = _arrays.values_layout(vshape, code)
            vals = ref.new_empty(shape, dtype=_arrays._TORCH_DTYPES[vcode])
        idx = ref.new_empty(ishape, dtype=torch.int64) if ishape is not None else _empty(torch.int64, ref.device)
        return vals, idx

    def _setup_context(ctx, inputs, output):
        key, args, nx, ny, scheme = inputs
        ctx.kp = (key, len(args), nx, ny, scheme)
        ctx.save_for_backward(*args, *output)

    def _backward(ctx, gvals, gidx):
        from ._call import canonical
        from .genred import _INDEXED, _WITH_INDICES, _Node, _input_grads

        text, n, nx, ny, scheme = ctx.kp
        saved = ctx.saved_tensors
        args, vals, idx = list(saved[:n]), saved[n], saved[n + 1]
        key = key_of(text)
        if len(key) == 2 and key[1] == "idx":
            key = key[0]
        f = formula(key)
        if not f.out_dim or gvals is None:
            return None, [None] * n, None, None, None
        _, _, cargs = canonical(f, args)
        if f.reduction not in _WITH_INDICES and f.reduction not in _INDEXED:
            idx = None
        node = _Node(key, nx, ny, None if scheme < 0 else scheme)
        needs = [a is not None for a in cargs]
        grads = _input_grads(None, node, cargs, vals, idx, gvals, needs)
        return None, [g if g is None else g.reshape(a.shape) for g, a in zip(grads, args)], None, None, None

    _reduce.register_autograd(_backward, setup_context=_setup_context)

    def _vmap_rule(info, in_dims, key, args, nx, ny, scheme):
        """torch.func.vmap of the operator (e.g. vmap inside a compiled
        function): as genred._KpFunction.vmap, the vmapped dimension becomes
        a leading libkp batch dimension, after each argument is brought to
        libkp's layout per sample. One operator call, no loop."""
        from ._call import canonical
        from .genred import _vmap_args

        dims = list(in_dims[1]) if in_dims[1] is not None else [None] * len(args)
        f = formula(key_of(key))
        moved = [a if a is None or d is None else a.movedim(d, 0) for a, d in zip(args, dims)]
        samples = [a if a is None or d is None else a.select(0, 0) for a, d in zip(moved, dims)]
        _, _, canon = canonical(f, samples)
        batched = []
        for a, d, c in zip(moved, dims, canon):
            if a is None or d is None:
                batched.append(c)
            else:
                batched.append(a.reshape((a.shape[0],) + tuple(c.shape)))
        front = [None if d is None else 0 for d in dims]  # batched arguments now have it first
        vals, idx = torch.ops.pykp.reduce(key, _vmap_args(f, front, batched), nx, ny, scheme)
        return (vals, idx), (0 if f.out_dim else None, 0 if f.out_index_dim else None)

    if hasattr(torch.library, "register_vmap"):  # torch >= 2.4
        torch.library.register_vmap("pykp::reduce", _vmap_rule)
