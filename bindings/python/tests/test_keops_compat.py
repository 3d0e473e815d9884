"""KeOps programs run unchanged: symbolic variables, call=False, every reduction
keyword read (with its effect, or a clear error), weighted LogSumExp, sinc,
generic_* and KernelProduct.apply, and KeOps tutorial workloads (k-means,
Gaussian mixture) -- all against dense float64 torch."""
import inspect

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import pykp  # noqa: E402
from pykp import Genred, KernelProduct, LazyTensor, Pm, Vi, Vj  # noqa: E402
from pykp import _options  # noqa: E402
from pykp.cluster import from_matrix  # noqa: E402

F64 = torch.float64


def clouds(M=40, N=30, D=3, seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(M, D, generator=g, dtype=dtype), torch.rand(N, D, generator=g, dtype=dtype)


def dense_sqdist(x, y):
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)


# ----------------------------------------------------------------- symbolic variables


def test_symbolic_variables_make_a_function_of_the_arrays():
    x, y = clouds()
    b = torch.rand(30, 4, dtype=F64)
    sig = torch.tensor([0.5, 1.0, 2.0, 4.0], dtype=F64)
    xi, yj, bj, s = Vi(0, 3), Vj(1, 3), Vj(2, 4), Pm(3, 4)
    fun = (LazyTensor.exp(-LazyTensor.sum((xi - yj) ** 2) / s**2).sum() * bj).sum_reduction(axis=1)
    assert callable(fun) and fun.nargs == 4
    ref = (torch.exp(-dense_sqdist(x, y)[..., None] / sig**2).sum(-1)[..., None] * b[None]).sum(1)
    torch.testing.assert_close(fun(x, y, b, sig), ref, rtol=1e-12, atol=1e-12)


def test_symbolic_and_fixed_variables_mix():
    x, y = clouds()
    fun = (-LazyTensor.sum((Vi(x) - Vj(0, 3)) ** 2)).exp().sum(dim=1)
    torch.testing.assert_close(fun(y), torch.exp(-dense_sqdist(x, y)).sum(1, keepdim=True))
    y2 = y[:7] + 0.1  # the function takes any number of points
    torch.testing.assert_close(fun(y2), torch.exp(-dense_sqdist(x, y2)).sum(1, keepdim=True))


def test_tuple_is_a_symbolic_variable_not_a_parameter():
    v = LazyTensor((0, 3, 0))
    assert v.ndim == 3 and v.ni is None
    assert "Vi(0,3)" in repr(v)
    x, y = clouds()
    fun = LazyTensor.sqdist(LazyTensor((0, 3, 0)), LazyTensor((1, 3, 1))).min(dim=1)
    torch.testing.assert_close(fun(x, y), dense_sqdist(x, y).min(1, keepdim=True)[0])
    assert LazyTensor((0.5, 1.0)).vars  # tuples of floats stay parameters


def test_symbolic_gradients_flow():
    x, y = clouds()
    x.requires_grad_()
    fun = (-Vi(0, 3).sqdist(Vj(1, 3))).exp().sum(dim=1)
    g = torch.autograd.grad(fun(x, y).sum(), x)[0]
    xr = x.detach().clone().requires_grad_()
    gr = torch.autograd.grad(torch.exp(-dense_sqdist(xr, y)).sum(), xr)[0]
    torch.testing.assert_close(g, gr)


def test_call_false_returns_a_reusable_function():
    x, y = clouds()
    K = (-Vi(x).sqdist(Vj(y))).exp()
    fun = K.sum(dim=1, call=False)
    assert callable(fun) and fun.nargs == 0
    torch.testing.assert_close(fun(), torch.exp(-dense_sqdist(x, y)).sum(1, keepdim=True))
    with pytest.raises(ValueError, match="takes 0 array"):
        fun(x)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: (Vi(0, 3) * Vj(2, 3)).sum(-1).sum(dim=1), "numbered 0..n-1"),
        (lambda: (Vi(0, 3) * Vj(0, 3)).sum(-1).sum(dim=1), "two categories"),
        (lambda: LazyTensor((0, 0, 0)), "symbolic variable"),
        (lambda: LazyTensor((0, 3, 5)), "symbolic variable"),
    ],
)
def test_bad_symbolic_variables(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_symbolic_call_checks_dimensions_and_count():
    x, y = clouds()
    fun = Vi(0, 3).sqdist(Vj(1, 3)).sum(dim=1)
    with pytest.raises(ValueError, match="dimension 3"):
        fun(x[:, :2], y)
    with pytest.raises(ValueError, match="takes 2 array"):
        fun(x)
    with pytest.raises(TypeError, match="index must be an int"):
        Vi(0.5, 3)


# ----------------------------------------------------------------- reduction keywords


def kahan_case():
    """Terms of 1e-8 after a 1 every 64 terms: a plain float32 sum drops them."""
    f32 = torch.float32
    x, y = torch.rand(2, 1, dtype=f32), torch.rand(1_000_000, 1, dtype=f32)
    b = torch.full((1_000_000, 1), 1e-8, dtype=f32)
    b[::64] = 1.0
    return x, y, b, b.double().sum()


def test_sum_scheme_and_dtype_acc_change_the_sums():
    x, y, b, ref = kahan_case()
    K = (Vi(x) - Vj(y)).abs() * 0 + Vj(b)
    plain = K.sum(dim=1, sum_scheme="direct_sum")
    kahan = K.sum(dim=1, sum_scheme="kahan_scheme")
    acc64 = K.sum(dim=1, dtype_acc="float64")
    assert torch.equal(kahan, acc64)
    assert (kahan.double() - ref).abs().max() < 1e-4 < 1e-3 < (plain.double() - ref).abs().max()
    g = Genred("Abs(x-y)*0+b", ["x = Vi(1)", "y = Vj(1)", "b = Vj(1)"], axis=1, sum_scheme="direct_sum")
    assert torch.equal(g(x, y, b), plain)
    with pytest.raises(ValueError, match="contradicts"):
        K.sum(dim=1, sum_scheme="direct_sum", use_double_acc=True)
    with pytest.raises(ValueError, match="sum_scheme"):
        K.sum(dim=1, sum_scheme="pairwise")


def test_out_is_written_in_place():
    x, y = clouds()
    out = torch.empty(40, 1, dtype=F64)
    r = (-Vi(x).sqdist(Vj(y))).exp().sum(dim=1, out=out)
    assert r.data_ptr() == out.data_ptr()
    torch.testing.assert_close(out, torch.exp(-dense_sqdist(x, y)).sum(1, keepdim=True))
    with pytest.raises(ValueError):
        (-Vi(x).sqdist(Vj(y))).exp().sum(dim=1, out=torch.empty(39, 1, dtype=F64))
    with pytest.raises(ValueError, match="out="):
        Vi(x).sqdist(Vj(y)).argmin(dim=1, out=torch.empty(40, 1, dtype=torch.int64))


def test_ranges_are_applied_not_ignored():
    """K.ranges and ranges= mask the reduction (docs/ranges.md); K.t() swaps their halves."""
    x, y = clouds()
    K = (-Vi(x).sqdist(Vj(y))).exp()
    ri = torch.tensor([[0, 10], [10, x.shape[0]]])
    rj = torch.tensor([[0, 5], [5, y.shape[0]]])
    rg = from_matrix(ri, rj, torch.tensor([[True, False], [False, True]]))
    mask = torch.zeros(x.shape[0], y.shape[0], dtype=torch.bool)
    mask[:10, :5] = mask[10:, 5:] = True
    dense = torch.exp(-dense_sqdist(x, y)) * mask
    torch.testing.assert_close(K.sum(dim=1, ranges=rg), dense.sum(1, keepdim=True))
    K.ranges = rg
    torch.testing.assert_close((K * 2).sum(dim=1), 2 * dense.sum(1, keepdim=True))  # carried through operations
    torch.testing.assert_close(K.sum(dim=0), dense.sum(0).unsqueeze(1))
    torch.testing.assert_close(K.t().sum(dim=1), dense.sum(0).unsqueeze(1))
    with pytest.raises(TypeError, match="ranges must be a 6-tuple"):
        K.sum(dim=1, ranges=(None,) * 5)


def test_backend_and_device_confirm_where_the_arrays_are():
    x, y = clouds()
    K = Vi(x).sqdist(Vj(y))
    ref = dense_sqdist(x, y).sum(1, keepdim=True)
    torch.testing.assert_close(K.sum(dim=1, backend="CPU"), ref)
    for bad, match in (({"backend": "GPU"}, "backend='GPU'"), ({"backend": "TPU"}, "backend must"),
                       ({"device_id": "0"}, "device_id"), ({"dtype": "float32"}, "dtype"),
                       ({"enable_chunks": "yes"}, "enable_chunks"), ({"use_fast_math": 1}, "use_fast_math"),
                       ({"call": "no"}, "call"), ({"axis_typo": 1}, "unexpected keyword")):
        with pytest.raises((ValueError, TypeError), match=match):
            K.sum(dim=1, **bad)
    g = Genred("SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], axis=1)
    with pytest.raises(ValueError, match="backend='GPU'"):
        g(x, y, backend="GPU")
    with pytest.raises(TypeError, match="dtype"):
        Genred("SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], axis=1, dtype="float32")(x, y)


REDUCTIONS = {
    "sum": {"dim": 1}, "sum_reduction": {"dim": 1}, "logsumexp": {"dim": 1}, "min": {"dim": 1},
    "max": {"dim": 1}, "argmin": {"dim": 1}, "argmax": {"dim": 1}, "min_reduction": {"dim": 1},
    "max_reduction": {"dim": 1}, "argmin_reduction": {"dim": 1}, "argmax_reduction": {"dim": 1},
    "min_argmin": {"dim": 1}, "max_argmax": {"dim": 1}, "Kmin": {"K": 2, "dim": 1},
    "argKmin": {"K": 2, "dim": 1}, "Kmin_argKmin": {"K": 2, "dim": 1},
}
# one bad value per keyword: a keyword that pykp dropped would not raise
BAD_VALUES = {
    "backend": "GPU", "device_id": "cuda:3", "ranges": (None,) * 6, "sum_scheme": "x", "dtype_acc": "float16",
    "use_double_acc": "yes", "enable_chunks": "yes", "rec_multVar_highdim": 2, "use_fast_math": "yes",
    "dtype": "int8", "cuda_type": "int8", "out": torch.empty(1, 1), "call": "no",
}


def test_every_keyword_is_read_by_every_reduction():
    """Walks the keywords pykp accepts: each one, given a bad value, raises --
    so none is accepted and dropped -- and each has a row in docs/keops_compat.md."""
    assert set(BAD_VALUES) == set(_options.CONSTRUCTION) | set(_options.CALL) | {"call"}
    x, y = clouds()
    K = Vi(x).sqdist(Vj(y))
    for name, base in REDUCTIONS.items():
        method = getattr(K, name)
        for kw, bad in BAD_VALUES.items():
            with pytest.raises((ValueError, TypeError, NotImplementedError)):
                method(**base, **{kw: bad})
    for param in inspect.signature(Genred.__init__).parameters:
        assert param in ("self", "formula", "aliases", "reduction_op", "axis", "opt_arg", "formula2") or param in BAD_VALUES
    for param in inspect.signature(Genred.__call__).parameters:
        assert param in ("self", "args", "nx", "ny") or param in BAD_VALUES


def test_compat_table_names_every_keyword():
    import pathlib

    doc = pathlib.Path(__file__).resolve().parents[3] / "docs" / "keops_compat.md"
    if not doc.exists():
        pytest.skip("docs/keops_compat.md is not beside this checkout")
    text = doc.read_text()
    for kw in BAD_VALUES:
        assert "`%s`" % kw in text, kw
    assert "silently" not in text.lower().replace("nothing is silently ignored", "")


# ----------------------------------------------------------------- operations


def test_weighted_logsumexp_other_and_weight():
    x, y = clouds()
    w = torch.rand(30, 1, dtype=F64) + 0.1
    K = -Vi(x).sqdist(Vj(y))
    ref = torch.logsumexp(-dense_sqdist(x, y) + w.log().T, dim=1, keepdim=True)
    torch.testing.assert_close(K.logsumexp(dim=1, other=Vj(w)), ref)
    torch.testing.assert_close(K.logsumexp(dim=1, weight=Vj(w)), ref)
    with pytest.raises(ValueError, match="not both"):
        K.logsumexp(dim=1, weight=Vj(w), other=Vj(w))


def test_sinc_is_torch_sinc():
    x, y = clouds()
    x = (x - 0.5) * 6
    x[0, 0] = 0.0
    xr = x.clone().requires_grad_()
    r = (Vi(xr) * Vj(y)).sinc().sum(dim=1)
    ref_x = x.clone().requires_grad_()
    ref = torch.sinc(ref_x[:, None, :] * y[None, :, :]).sum(1)
    torch.testing.assert_close(r, ref, rtol=1e-12, atol=1e-12)
    ga = torch.autograd.grad(r.sum(), xr)[0]
    gb = torch.autograd.grad(ref.sum(), ref_x)[0]
    torch.testing.assert_close(ga, gb, rtol=1e-9, atol=1e-9)


# ----------------------------------------------------------------- functional spellings


def test_generic_reductions():
    x, y = clouds()
    b = torch.rand(30, 2, dtype=F64)
    s = pykp.generic_sum("Exp(-SqDist(x,y))*b", "a = Vi(2)", "x = Vi(3)", "y = Vj(3)", "b = Vj(2)")
    torch.testing.assert_close(s(x, y, b), torch.exp(-dense_sqdist(x, y)) @ b)
    t = pykp.generic_sum("Exp(-SqDist(x,y))", "a = Vj(1)", "x = Vi(3)", "y = Vj(3)")
    torch.testing.assert_close(t(x, y), torch.exp(-dense_sqdist(x, y)).sum(0)[:, None])
    lse = pykp.generic_logsumexp("-SqDist(x,y)", "a = Vi(1)", "x = Vi(3)", "y = Vj(3)")
    torch.testing.assert_close(lse(x, y), torch.logsumexp(-dense_sqdist(x, y), 1, keepdim=True))
    am = pykp.generic_argmin("SqDist(x,y)", "a = Vi(1)", "x = Vi(3)", "y = Vj(3)")
    assert torch.equal(am(x, y)[:, 0], dense_sqdist(x, y).argmin(1))
    ak = pykp.generic_argkmin("SqDist(x,y)", "a = Vi(4)", "x = Vi(3)", "y = Vj(3)")
    assert torch.equal(ak(x, y), dense_sqdist(x, y).argsort(1)[:, :4])
    with pytest.raises(ValueError, match="dimension 3"):
        pykp.generic_sum("x", "a = Vi(3)", "x = Vi(2)")
    with pytest.raises(ValueError, match="output must read"):
        pykp.generic_sum("x", "a = Pm(2)", "x = Vi(2)")


@pytest.mark.parametrize("kernel", ["gaussian", "laplacian", "cauchy", "inverse_multiquadric"])
def test_kernel_product_apply_is_differentiable_in_every_argument(kernel):
    x, y = clouds(M=6, N=5)
    b = torch.rand(5, 2, dtype=F64)
    s = torch.tensor([0.7], dtype=F64)
    args = [t.clone().requires_grad_() for t in (s, x, y, b)]
    torch.autograd.gradcheck(lambda s_, x_, y_, b_: KernelProduct.apply(s_, x_, y_, b_, kernel), args)
    r = torch.sqrt(dense_sqdist(x, y))
    k = {"gaussian": torch.exp(-r**2 / s**2), "laplacian": torch.exp(-r / s), "cauchy": 1 / (1 + r**2 / s**2),
         "inverse_multiquadric": 1 / torch.sqrt(1 + r**2 / s**2)}[kernel]
    torch.testing.assert_close(KernelProduct.apply(s, x, y, b, kernel), k @ b)


# ----------------------------------------------------------------- KeOps tutorial workloads


def test_kmeans_tutorial_workload():
    """KeOps' k-means tutorial: Lloyd iterations with argmin over the centroids."""
    g = torch.Generator().manual_seed(1)
    x = torch.cat([torch.randn(300, 2, generator=g, dtype=F64) * 0.1 + c for c in (0.0, 1.0, 2.0)])
    c = x[[0, 300, 600]].clone()
    cd = c.clone()
    for _ in range(10):
        cl = (Vi(x).sqdist(Vj(c))).argmin(dim=1).view(-1)
        cld = dense_sqdist(x, cd).argmin(1)
        assert torch.equal(cl, cld)
        c = torch.stack([x[cl == k].mean(0) for k in range(3)])
        cd = torch.stack([x[cld == k].mean(0) for k in range(3)])
    torch.testing.assert_close(c, cd)
    assert (c[:, 0].sort()[0] - torch.tensor([0.0, 1.0, 2.0], dtype=F64)).abs().max() < 0.05


def test_gaussian_mixture_tutorial_workload():
    """KeOps' GMM tutorial: the log-likelihood is a weighted LogSumExp over the
    components, with per-component precision matrices as j-variables."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(200, 2, generator=g, dtype=F64)
    mu = torch.randn(4, 2, generator=g, dtype=F64, requires_grad=True)
    A = torch.eye(2, dtype=F64).repeat(4, 1, 1) * torch.tensor([1.0, 2.0, 0.5, 1.5], dtype=F64)[:, None, None]
    w = torch.softmax(torch.randn(4, generator=g, dtype=F64), 0)[:, None]
    dets = torch.det(A).sqrt()[:, None]
    A = A.reshape(4, 4)
    D = Vi(x).weightedsqdist(Vj(mu), Vj(A))
    ll = (-D / 2).logsumexp(dim=1, weight=Vj(w * dets / (2 * np.pi)))
    diff = x[:, None, :] - mu[None, :, :]
    Dd = torch.einsum("nkd,kde,nke->nk", diff, A.reshape(4, 2, 2), diff)
    ref = torch.logsumexp(-Dd / 2 + (w * dets / (2 * np.pi)).log().T, dim=1, keepdim=True)
    torch.testing.assert_close(ll, ref)
    ga = torch.autograd.grad(ll.sum(), mu)[0]
    gb = torch.autograd.grad(ref.sum(), mu)[0]
    torch.testing.assert_close(ga, gb)


def test_grad_method_is_the_formula_gradient():
    x, y = clouds()
    e = torch.rand(40, 1, dtype=F64)
    xi = Vi(x)
    g = (-xi.sqdist(Vj(y))).exp().grad(xi, Vi(e)).sum(dim=1)
    xr = x.clone().requires_grad_()
    ref = torch.autograd.grad((torch.exp(-dense_sqdist(xr, y)) * e).sum(), xr)[0]
    torch.testing.assert_close(g, ref)
    with pytest.raises(ValueError, match="variable"):
        (-xi.sqdist(Vj(y))).grad(xi * 2, Vi(e))


def test_clampint():
    x, y = clouds()
    r = ((Vi(x) - Vj(y)) * 5).clampint(-1, 2).sum(dim=1)
    torch.testing.assert_close(r, ((x[:, None] - y[None]) * 5).clamp(-1, 2).sum(1))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.int32])
def test_unsupported_dtypes_are_refused_as_documented(dtype):
    """float16 and complex arrays are libkp dtypes (tests/test_dtypes.py); others are refused by name."""
    x, y = torch.rand(5, 3).to(dtype), torch.rand(4, 3).to(dtype)
    with pytest.raises(TypeError, match="libkp takes float16, float32, float64, complex64 and complex128"):
        (Vi(x) * Vj(y)).sum(-1).sum(dim=1)
    with pytest.raises(TypeError, match="libkp takes float16, float32, float64, complex64 and complex128"):
        Genred("(x|y)", ["x = Vi(3)", "y = Vj(3)"], axis=1)(x, y)


def test_unknown_keops_functions_name_themselves():
    with pytest.raises(ValueError, match="unknown function 'GradMatrix'"):
        Genred("GradMatrix(x,y)", ["x = Vi(3)", "y = Vj(3)"], axis=1)
    x, y = clouds()
    r = Genred("Var(0,3,0) - Var(1,3,1)", [], axis=1, reduction_op="Min")(x, y)
    torch.testing.assert_close(r, (x[:, None] - y[None]).min(1)[0])


def test_tensordot_and_kron():
    """TensorDot (with and without a permutation) and Kron against einsum /
    torch.kron in float64, gradients by gradcheck."""
    g = torch.Generator().manual_seed(4)
    a, b = torch.rand(6, 6, generator=g, dtype=F64), torch.rand(5, 12, generator=g, dtype=F64)
    A, B = a.view(6, 2, 3), b.view(5, 3, 4)
    r = Vi(a).keops_tensordot(Vj(b), (2, 3), (3, 4), (1,), (0,)).sum(dim=1)
    torch.testing.assert_close(r, torch.einsum("nik,mkl->nmil", A, B).reshape(6, 5, 8).sum(1))
    rp = Vi(a).keops_tensordot(Vj(b), (2, 3), (3, 4), (1,), (0,), (1, 0)).sum(dim=1)
    torch.testing.assert_close(rp, torch.einsum("nik,mkl->nmli", A, B).reshape(6, 5, 8).sum(1))
    with pytest.raises(ValueError, match="contracted axes"):
        pykp.Genred("TensorDot(a,b,(2,3),(3,4),(0,1),(1,2))", ["a = Vi(6)", "b = Vj(12)"], axis=1)
    c, d = torch.rand(6, 4, generator=g, dtype=F64), torch.rand(5, 6, generator=g, dtype=F64)
    k = Vi(c).keops_kron(Vj(d), (2, 2), (2, 3)).sum(dim=1)
    ref = torch.stack([sum(torch.kron(c[i].view(2, 2), d[j].view(2, 3)).reshape(-1) for j in range(5))
                       for i in range(6)])
    torch.testing.assert_close(k, ref)
    a.requires_grad_()
    torch.autograd.gradcheck(lambda a_: Vi(a_).keops_tensordot(Vj(b), (2, 3), (3, 4), (1,), (0,)).sum(dim=1), [a])


def test_kernel_solve_reads_the_genred_keywords():
    """KernelSolve takes Genred's keywords and reads them (a bad value raises,
    dtype is checked against the arrays), none dropped."""
    x = torch.rand(30, 3, dtype=F64)
    b = torch.rand(30, 1, dtype=F64)
    args = ("Exp(-SqDist(x,y))*b", ["x = Vi(3)", "y = Vj(3)", "b = Vj(1)"], "b")
    for kw, bad in BAD_VALUES.items():
        if kw in _options.CONSTRUCTION:
            with pytest.raises((ValueError, TypeError)):
                pykp.KernelSolve(*args, axis=1, **{kw: bad})
    with pytest.raises(TypeError, match="dtype"):
        pykp.KernelSolve(*args, axis=1, dtype="float32")(x, x, b, alpha=1.0)
    a = pykp.KernelSolve(*args, axis=1, dtype="float64", enable_chunks=False)(x, x, b, alpha=1.0)
    K = torch.exp(-dense_sqdist(x, x))
    torch.testing.assert_close(a, torch.linalg.solve(K + torch.eye(30, dtype=F64), b), rtol=1e-6, atol=1e-6)
