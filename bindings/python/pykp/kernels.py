"""
kernels.py -- kernel_product: sum_j k(x_i, y_j) b_j (and its log-domain
version) for the usual radial kernels and products/sums of kernels on several
feature pairs, written as a small expression:

    kernel_product(q, q, p, "gaussian", sigma=0.5)
    kernel_product({"x": x, "u": u}, {"y": y, "v": v}, b,
                   "gaussian(x,y) * linear(u,v)**2", sigma={"x": 0.5})   # varifold kernel

Kernels (r = |x - y|):
    gaussian               exp(-r^2 / sigma^2)
    laplacian              exp(-r / sigma)
    cauchy                 1 / (1 + r^2 / sigma^2)
    inverse_multiquadric   1 / sqrt(1 + r^2 / sigma^2)
    energy                 -r                  (no sigma)
    linear                 <x, y>              (no sigma)

The expression is turned into one libkp formula with sigma entering as
parameters 1/sigma^2 (or 1/sigma) computed by the array library, so gradients
flow to sigma too when it is a torch tensor.
"""
import math
import re

import numpy as np

from . import _arrays
from ._arrays import NumpyBackend, TorchBackend, backend_of, is_array, is_tensor
from ._lib import KpTypeError, KpValueError
from .genred import reduce

# name -> (value formula, log formula, uses sigma). {p} is sigma itself, a Pm(1)
# parameter: 1/sigma^2 is computed once per row by libkp (ROW location), so
# the per-pair cost is the same as with a precomputed 1/sigma^2, and the
# gradient with respect to sigma comes from libkp's row-summed parameter gradient.
KERNELS = {
    "gaussian": ("Exp(-SqDist({x},{y})*Inv(Square({p})))", "(-SqDist({x},{y})*Inv(Square({p})))", True),
    "laplacian": ("Exp(-Norm2({x}-{y})*Inv({p}))", "(-Norm2({x}-{y})*Inv({p}))", True),
    "cauchy": ("Inv(1+SqDist({x},{y})*Inv(Square({p})))", "(-Log(1+SqDist({x},{y})*Inv(Square({p}))))", True),
    "inverse_multiquadric": (
        "Rsqrt(1+SqDist({x},{y})*Inv(Square({p})))",
        "(-0.5*Log(1+SqDist({x},{y})*Inv(Square({p}))))",
        True,
    ),
    "energy": ("(-Norm2({x}-{y}))", "Log(-Norm2({x}-{y}))", False),
    "linear": ("({x}|{y})", "Log(({x}|{y}))", False),
}
_ALIASES = {"gauss": "gaussian", "imq": "inverse_multiquadric", "inverse-multiquadric": "inverse_multiquadric"}

# ----------------------------------------------------------------- expression parser

_TOKEN = re.compile(r"\s*(?:(\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)|(\*\*)|([A-Za-z_][A-Za-z0-9_]*)|(\S))")


def _tokens(text):
    out = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:  # pragma: no cover - the regex matches any non-space
            break
        num, pw, name, op = m.groups()
        if num is not None:
            out.append(("num", float(num), m.start(1)))
        elif pw is not None:
            out.append(("op", "**", m.start(2)))
        elif name is not None:
            out.append(("name", name, m.start(3)))
        else:
            out.append(("op", op, m.start(4)))
        pos = m.end()
    out.append(("end", None, len(text)))
    return out


class _Parser:
    """expr := term (('+'|'-') term)* ; term := unary (('*'|'/') unary)* ;
    unary := '-' unary | power ; power := atom ['**' ['-'] NUMBER] ;
    atom := NUMBER | KERNEL '(' NAME ',' NAME ')' | '(' expr ')'"""

    def __init__(self, text):
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def fail(self, msg):
        col = self.toks[self.i][2] + 1
        raise KpValueError("pykp: kernel expression %r, col %d: %s" % (self.text, col, msg))

    def peek(self):
        return self.toks[self.i]

    def take(self, kind=None, value=None):
        t = self.toks[self.i]
        if (kind and t[0] != kind) or (value is not None and t[1] != value):
            self.fail("expected %s, got %s" % (value or kind, "end of text" if t[0] == "end" else repr(t[1])))
        self.i += 1
        return t

    def parse(self):
        e = self.expr()
        if self.peek()[0] != "end":
            self.fail("unexpected %r" % (self.peek()[1],))
        return e

    def expr(self):
        e = self.term()
        while self.peek()[0] == "op" and self.peek()[1] in "+-":
            op = self.take()[1]
            e = ("add" if op == "+" else "sub", e, self.term())
        return e

    def term(self):
        e = self.unary()
        while self.peek()[0] == "op" and self.peek()[1] in ("*", "/"):
            op = self.take()[1]
            e = ("mul" if op == "*" else "div", e, self.unary())
        return e

    def unary(self):
        if self.peek() == ("op", "-", self.peek()[2]):
            self.take()
            return ("neg", self.unary())
        return self.power()

    def power(self):
        e = self.atom()
        if self.peek()[0] == "op" and self.peek()[1] == "**":
            self.take()
            sign = 1.0
            if self.peek()[0] == "op" and self.peek()[1] == "-":
                self.take()
                sign = -1.0
            e = ("pow", e, sign * self.take("num")[1])
        return e

    def atom(self):
        t = self.peek()
        if t[0] == "num":
            self.take()
            return ("num", t[1])
        if t[0] == "op" and t[1] == "(":
            self.take()
            e = self.expr()
            self.take("op", ")")
            return e
        if t[0] == "name":
            name = self.take()[1]
            kname = _ALIASES.get(name.lower(), name.lower())
            if kname not in KERNELS:
                self.i -= 1
                self.fail("unknown kernel %r; known kernels: %s" % (name, ", ".join(sorted(KERNELS))))
            self.take("op", "(")
            a = self.take("name")[1]
            self.take("op", ",")
            b = self.take("name")[1]
            self.take("op", ")")
            return ("k", kname, a, b)
        self.fail("expected a number, a kernel call or '('")


def _num(v):
    return repr(float(v)) if not float(v).is_integer() else "%d" % int(v)


# ----------------------------------------------------------------- kernel_product


def _features(x, default, side):
    if isinstance(x, dict):
        if not x:
            raise KpValueError("pykp: the %s features dict is empty" % side)
        return dict(x)
    return {default: x}


def kernel_product(x, y, b, kernel="gaussian", sigma=1.0, mode="sum"):
    """a_i = sum_j k(x_i, y_j) b_j  (mode="sum"), or
    a_i = log sum_j exp(log k(x_i, y_j) + b_j)  (mode="lse").

    Works on NumPy arrays and torch tensors (differentiable to any order).

    Parameters
    ----------
    x, y : arrays (N, D), (M, D), or dicts name -> array
        The features the expression names (i-side names in x, j-side names in y).
    b : array (M, E) or (M,)
        The result is then (N, E) or (N,).
    kernel : str
        A kernel name (gaussian, laplacian, cauchy, inverse_multiquadric,
        energy, linear) or an expression of kernel calls k(xname, yname)
        combined with + - * / ** and numbers, e.g. "gaussian(x,y) * linear(u,v)**2".
    sigma : number, 0-D/1-element array/tensor, or dict
        One value for every kernel, or a dict keyed by a feature name (either
        side) or "xname,yname". A torch sigma gets gradients; it is cast to
        the data's dtype.
    mode : {"sum", "lse"}
        Sum of kernel values, or log-sum-exp of log-kernels plus b.
    """
    xs = _features(x, "x", "x")
    ys = _features(y, "y", "y")
    try:
        sig_key = tuple(sorted(map(repr, sigma))) if isinstance(sigma, dict) else None
        ckey = (
            kernel,
            mode,
            tuple((n, _dim_of(a)) for n, a in xs.items()),
            tuple((n, _dim_of(a)) for n, a in ys.items()),
            _dim_of(b),
            sig_key,
        )
        compiled = _compiled.get(ckey)
    except TypeError:  # unhashable input: let _compile report it
        ckey, compiled = None, None
    if compiled is None:
        compiled = _compile(xs, ys, b, kernel, sigma, mode)
        if ckey is not None:
            if len(_compiled) > 512:
                _compiled.clear()
            _compiled[ckey] = compiled
    key, spec, b_was_1d = compiled
    # one device for all (never copied); sigma given as a number is made there
    named = [("x feature %r" % n, a) for n, a in xs.items()] + [("y feature %r" % n, a) for n, a in ys.items()]
    where = _arrays.check_same_device(named + [("b", b)])
    args = []
    code = None
    for kind, name in spec:
        if kind == 0:
            a = xs[name]
        elif kind == 1:
            a = ys[name]
        elif kind == 3:
            a = b
        else:
            if code is None:
                code = _arrays.dtype_code(b, "b")
            a = _param_value(_sigma_for(sigma, *name), b, code, where)
        args.append(a)
    out, _ = reduce(key, args, what="kernel_product input")
    return out.reshape(-1) if b_was_1d else out


_compiled = {}


def _dim_of(a):
    s = getattr(a, "shape", None)
    if s is None:
        return ("?", type(a).__name__)
    return (len(s), s[-1] if len(s) else None)


def _compile(xs, ys, b, kernel, sigma, mode):
    """(registry key, argument spec, b is 1-D) for one kernel_product layout.
    The spec lists, per argument position: (0, xname), (1, yname), (2, (a, b))
    for the sigma of pair (a, b), (3, None) for b."""
    if mode not in ("sum", "lse"):
        raise KpValueError("pykp: mode must be 'sum' or 'lse', got %r" % (mode,))
    if not isinstance(kernel, str):
        raise KpTypeError("pykp: kernel must be a string, got %s" % type(kernel).__name__)
    name = kernel.strip().lower()
    name = _ALIASES.get(name, name)
    if re.fullmatch(r"[a-z_]+", name):
        if name not in KERNELS:
            raise KpValueError("pykp: unknown kernel %r; known kernels: %s" % (kernel, ", ".join(sorted(KERNELS))))
        if len(xs) != 1 or len(ys) != 1:
            raise KpValueError(
                "pykp: kernel %r takes one feature per side; use an expression such as "
                "'gaussian(x,y) * linear(u,v)' to combine several" % kernel
            )
        expr = ("k", name, next(iter(xs)), next(iter(ys)))
    else:
        expr = _Parser(kernel).parse()

    for nm, a in list(xs.items()) + list(ys.items()) + [("b", b)]:
        if not is_array(a):
            raise KpTypeError("pykp: kernel_product input %r is a %s, expected an array" % (nm, type(a).__name__))
    if backend_of(list(xs.values()) + list(ys.values()) + [b]) is None:  # also: no NumPy/torch mix
        raise KpTypeError("pykp: kernel_product needs NumPy arrays or torch tensors")

    aliases = []
    spec = []
    names = {}
    params = {}

    def var(name, side):
        feats = xs if side == 0 else ys
        if name not in feats:
            other = ys if side == 0 else xs
            where = " (%r is a %s-side feature)" % (name, "y" if side == 0 else "x") if name in other else ""
            raise KpValueError(
                "pykp: the kernel expression uses %r as a %s argument, but the %s features are %s%s"
                % (name, "first (x-side)" if side == 0 else "second (y-side)", "x" if side == 0 else "y",
                   sorted(feats), where)
            )
        key = (side, name)
        if key not in names:
            a = feats[name]
            if a.ndim != 2:
                raise KpValueError("pykp: feature %r must have shape (n, d), got %s" % (name, tuple(a.shape)))
            alias = "%s%d" % ("xi" if side == 0 else "yj", len(names))
            aliases.append("%s = %s(%d)" % (alias, "Vi" if side == 0 else "Vj", a.shape[1]))
            spec.append((side, name))
            names[key] = (alias, a.shape[1])
        return names[key]

    def param(a, bname):
        _sigma_for(sigma, a, bname)  # raises when the dict has no entry
        pkey = (a, bname) if isinstance(sigma, dict) else None  # one shared sigma, or one per pair
        if pkey not in params:
            alias = "pm%d" % len(params)
            aliases.append("%s = Pm(1)" % alias)
            spec.append((2, (a, bname)))
            params[pkey] = alias
        return params[pkey]

    def emit(e, log):
        kind = e[0]
        if kind == "num":
            if log:
                return _num(math.log(e[1])) if e[1] > 0 else "Log(%s)" % _num(e[1])
            return _num(e[1])
        if kind == "k":
            _, kname, a, bn = e
            (xa, dx), (yb, dy) = var(a, 0), var(bn, 1)
            if dx != dy:
                raise KpValueError("pykp: %s(%s,%s): features of dimensions %d and %d" % (kname, a, bn, dx, dy))
            value_f, log_f, uses_sigma = KERNELS[kname]
            p = param(a, bn) if uses_sigma else None
            return (log_f if log else value_f).format(x=xa, y=yb, p=p)
        if kind == "neg":
            return "Log(-(%s))" % emit(e[1], False) if log else "(-%s)" % emit(e[1], False)
        if kind == "pow":
            p = e[2]
            if log:
                return "(%s*%s)" % (_num(p), emit(e[1], True))
            inner = emit(e[1], False)
            if float(p).is_integer():
                return "Square(%s)" % inner if p == 2 else "Pow(%s,%d)" % (inner, int(p))
            return "Powf(%s,%s)" % (inner, _num(p))
        l_, r_ = e[1], e[2]
        if log and kind in ("mul", "div"):
            return "(%s%s%s)" % (emit(l_, True), "+" if kind == "mul" else "-", emit(r_, True))
        op = {"add": "+", "sub": "-", "mul": "*", "div": "/"}[kind]
        v = "(%s%s%s)" % (emit(l_, False), op, emit(r_, False))
        return "Log(%s)" % v if log else v

    F = emit(expr, mode == "lse")
    if not any(k[0] == 0 for k in names) or not any(k[0] == 1 for k in names):
        raise KpValueError("pykp: the kernel expression must use at least one x-side and one y-side feature")
    if b.ndim not in (1, 2):
        raise KpValueError("pykp: b must have shape (M,) or (M, E), got %s" % (tuple(b.shape),))
    e = 1 if b.ndim == 1 else b.shape[1]
    aliases.append("bj = Vj(%d)" % e)
    spec.append((3, None))
    if mode == "sum":
        text = "Sum_Reduction((%s)*bj,1)" % F
    else:
        text = "LogSumExp_Reduction((%s)+bj,1)" % F
    return ("parse", text, tuple(aliases)), tuple(spec), b.ndim == 1


def _isnum(s):
    return isinstance(s, (int, float, np.integer, np.floating)) and not isinstance(s, bool)


def _sigma_for(sigma, a, b):
    if isinstance(sigma, dict):
        for k in ((a, b), "%s,%s" % (a, b), a, b):
            if k in sigma:
                return sigma[k]
        raise KpValueError("pykp: no sigma for the feature pair (%s, %s); sigma keys: %s" % (a, b, list(sigma)))
    return sigma


_param_cache = {}


def _param_value(s, b, code, where=_arrays.CPU):
    """sigma as a 1-element parameter array of b's kind and dtype, on device
    where (the data's)."""
    if _isnum(s):
        # on a CUDA device, one cached tensor per stream: it is allocated on, and
        # only read on, that stream, so freeing it (cache cleared) follows
        # torch's caching-allocator rule without record_stream
        key = (float(s), code, is_tensor(b), where, _arrays.stream_for(where))
        p = _param_cache.get(key)
        if p is None:
            if len(_param_cache) > 256:
                _param_cache.clear()
            be = TorchBackend if is_tensor(b) else NumpyBackend
            p = _param_cache[key] = be.scalar_array([float(s)], code, where)
        return p
    if is_tensor(s):
        if not is_tensor(b):
            raise KpTypeError("pykp: sigma is a torch tensor but the data are NumPy arrays")
        ws = _arrays.where_of(s, "sigma")
        if ws != where:
            raise _arrays.KpRuntimeError(
                "pykp: sigma is on %s but the data are on %s; pykp never copies between devices: move sigma "
                "with .to(%r)" % (_arrays.device_name(ws), _arrays.device_name(where), _arrays.device_name(where))
            )
        if s.numel() != 1:
            raise KpValueError("pykp: sigma must hold one value, got shape %s" % (tuple(s.shape),))
        s = s.reshape(1)
        if s.dtype != b.dtype:
            s = s.to(b.dtype)
        return s
    if isinstance(s, np.ndarray):
        if s.size != 1:
            raise KpValueError("pykp: sigma must hold one value, got shape %s" % (s.shape,))
        be = TorchBackend if is_tensor(b) else NumpyBackend
        return be.scalar_array([float(s.reshape(-1)[0])], code, where)
    raise KpTypeError("pykp: sigma must be a number, an array or a tensor, got %s" % type(s).__name__)
