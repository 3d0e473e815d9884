"""torch.func through pykp: vmap, grad, jacrev, jacfwd and hessian of Genred,
LazyTensor and kernel_product reductions, each checked against the same
computation on dense float64 torch; vmap runs one batched libkp call."""
import pytest

torch = pytest.importorskip("torch")
func = pytest.importorskip("torch.func")

import pykp  # noqa: E402
from pykp import LazyTensor, _lib  # noqa: E402

D = torch.float64
TOL = dict(rtol=1e-9, atol=1e-11)


def _data(seed=0, n=6, m=8, d=3, e=2):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, dtype=D, generator=g)
    y = torch.randn(m, d, dtype=D, generator=g)
    b = torch.randn(m, e, dtype=D, generator=g)
    return x, y, b


def _sqd(x, y):
    return ((x[..., :, None, :] - y[..., None, :, :]) ** 2).sum(-1)


# -------------------------------------------------------------- formulas, pykp and dense

GAUSS = pykp.Genred("Exp(-SqDist(x,y)*s)*b", ["x=Vi(3)", "y=Vj(3)", "s=Pm(1)", "b=Vj(2)"], axis=1)
GAUSS0 = pykp.Genred("Exp(-SqDist(x,y)*s)*b", ["x=Vj(3)", "y=Vi(3)", "s=Pm(1)", "b=Vi(2)"], axis=0)
LSE = pykp.Genred("-SqDist(x,y)*s+b", ["x=Vi(3)", "y=Vj(3)", "s=Pm(1)", "b=Vj(1)"], reduction_op="LogSumExp", axis=1)
SOFT = pykp.Genred("-SqDist(x,y)*s", ["x=Vi(3)", "y=Vj(3)", "s=Pm(1)", "b=Vj(2)"],
                   reduction_op="SumSoftMaxWeight", formula2="b", axis=1)
MIN = pykp.Genred("SqDist(x,y)*s+b", ["x=Vi(3)", "y=Vj(3)", "s=Pm(1)", "b=Vj(1)"], reduction_op="Min", axis=1)


def gauss_dense(x, y, s, b):
    return torch.exp(-_sqd(x, y) * s) @ b


def lse_dense(x, y, s, b):
    return torch.logsumexp(-_sqd(x, y) * s + b[..., None, :, 0], dim=-1, keepdim=True)


def soft_dense(x, y, s, b):
    return torch.softmax(-_sqd(x, y) * s, dim=-1) @ b


def min_dense(x, y, s, b):
    return (_sqd(x, y) * s + b[..., None, :, 0]).min(dim=-1, keepdim=True).values


CASES = {
    "gauss": (GAUSS, gauss_dense, 2),
    "gauss_axis0": (GAUSS0, gauss_dense, 2),
    "lse": (LSE, lse_dense, 1),
    "softmax": (SOFT, soft_dense, 2),
    "min": (MIN, min_dense, 1),
}


def _args(case, seed=0):
    x, y, b = _data(seed, e=CASES[case][2])
    return x, y, torch.tensor([0.7], dtype=D), b


def _both(case, transform):
    fk, fd, _ = CASES[case]
    return transform(fk), transform(fd)


# -------------------------------------------------------------- vmap


@pytest.mark.parametrize("case", sorted(CASES))
def test_vmap_over_x_matches_dense(case):
    x, y, s, b = _args(case)
    xs = torch.randn(4, 6, 3, dtype=D)
    rk, rd = _both(case, lambda f: torch.func.vmap(f, in_dims=(0, None, None, None))(xs, y, s, b))
    assert rk.shape == (4, 6, 1 if case in ("lse", "min") else 2)
    torch.testing.assert_close(rk, rd, **TOL)


@pytest.mark.parametrize("case", ["gauss", "lse", "softmax"])
def test_vmap_over_several_args_and_dims(case):
    x, y, s, b = _args(case)
    ys = torch.randn(8, 3, 5, dtype=D)  # vmapped dimension last
    bs = torch.randn(5, 8, b.shape[1], dtype=D)
    ss = torch.rand(5, 1, dtype=D) + 0.2
    vm = lambda f: torch.func.vmap(f, in_dims=(None, 2, 0, 0))(x, ys, ss, bs)  # noqa: E731
    rk, rd = _both(case, vm)
    torch.testing.assert_close(rk, rd, **TOL)


def test_nested_vmap_and_batched_inputs():
    x, y, s, b = _args("gauss")
    xs = torch.randn(3, 4, 2, 6, 3, dtype=D)  # vmap(vmap(.)) over a reduction already batched by libkp
    vm = lambda f: torch.func.vmap(torch.func.vmap(f, in_dims=(0, None, None, None)), in_dims=(0, None, None, None))  # noqa: E731
    rk = vm(GAUSS)(xs, y, s, b)
    rd = vm(gauss_dense)(xs, y, s, b)
    assert rk.shape == (3, 4, 2, 6, 2)
    torch.testing.assert_close(rk, rd, **TOL)


def test_vmap_is_one_libkp_call(monkeypatch):
    x, y, s, b = _args("gauss")
    calls = []
    real = _lib.Plan.run_packed

    def counting(self, *a, **k):
        calls.append(1)
        return real(self, *a, **k)

    monkeypatch.setattr(_lib.Plan, "run_packed", counting)
    torch.func.vmap(GAUSS, in_dims=(0, None, None, None))(torch.randn(16, 6, 3, dtype=D), y, s, b)
    assert len(calls) == 1


def test_vmap_argmin_and_min_argmin():
    x, y, s, b = _args("min")
    xs = torch.randn(4, 6, 3, dtype=D)
    am = pykp.Genred("SqDist(x,y)", ["x=Vi(3)", "y=Vj(3)"], reduction_op="ArgMin", axis=1)
    mam = pykp.Genred("SqDist(x,y)", ["x=Vi(3)", "y=Vj(3)"], reduction_op="Min_ArgMin", axis=1)
    idx = torch.func.vmap(am, in_dims=(0, None))(xs, y)
    vals, idx2 = torch.func.vmap(mam, in_dims=(0, None))(xs, y)
    ref = _sqd(xs, y).min(dim=-1, keepdim=True)
    assert torch.equal(idx, ref.indices) and torch.equal(idx2, ref.indices)
    torch.testing.assert_close(vals, ref.values, **TOL)


# -------------------------------------------------------------- grad, jacrev, jacfwd, hessian


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("argnum", [0, 1, 2, 3])
def test_grad_jacrev_jacfwd(case, argnum):
    args = _args(case)
    for tr in (
        lambda f: torch.func.grad(lambda *a: (f(*a) ** 2).sum(), argnums=argnum)(*args),
        lambda f: torch.func.jacrev(f, argnums=argnum)(*args),
        lambda f: torch.func.jacfwd(f, argnums=argnum)(*args),
    ):
        rk, rd = _both(case, tr)
        torch.testing.assert_close(rk, rd, **TOL)


@pytest.mark.parametrize("case", ["gauss", "lse", "softmax", "gauss_axis0"])
@pytest.mark.parametrize("argnum", [0, 1, 2])
def test_hessian(case, argnum):
    args = _args(case)

    def loss(f):
        return lambda *a: (f(*a) ** 2).sum()

    rk, rd = _both(case, lambda f: torch.func.hessian(loss(f), argnums=argnum)(*args))
    torch.testing.assert_close(rk, rd, **TOL)


def test_hessian_of_min_matches_dense_where_smooth():
    # Min is piecewise smooth: its Hessian is that of the selected term
    args = _args("min")
    h = lambda f: torch.func.hessian(lambda x: f(x, *args[1:]).sum())(args[0])  # noqa: E731
    rk, rd = _both("min", h)
    torch.testing.assert_close(rk, rd, **TOL)


def test_vmap_of_grad_per_sample():
    x, y, s, b = _args("gauss")
    xs = torch.randn(5, 6, 3, dtype=D)
    per = lambda f: torch.func.vmap(torch.func.grad(lambda x: f(x, y, s, b).sum()))(xs)  # noqa: E731
    rk, rd = _both("gauss", per)
    torch.testing.assert_close(rk, rd, **TOL)


# -------------------------------------------------------------- LazyTensor and kernel_product


def _lazy_gauss(x, y, s, b):
    X, Y, B = LazyTensor(x[..., :, None, :]), LazyTensor(y[..., None, :, :]), LazyTensor(b[..., None, :, :])
    return ((-((X - Y) ** 2).sum(-1) * s).exp() * B).sum(dim=1)


def _lazy_lse(x, y, s, b):
    X, Y = LazyTensor(x[..., :, None, :]), LazyTensor(y[..., None, :, :])
    return (-((X - Y) ** 2).sum(-1) * s).logsumexp(dim=1)


def test_lazytensor_transforms():
    x, y, s, b = _args("gauss")
    s = 0.7
    dense_lse = lambda x, y, s, b: torch.logsumexp(-_sqd(x, y) * s, dim=-1, keepdim=True)  # noqa: E731
    for lazy, dense in ((_lazy_gauss, gauss_dense), (_lazy_lse, dense_lse)):
        xs = torch.randn(3, 6, 3, dtype=D)
        for tr in (
            lambda f: torch.func.vmap(f, in_dims=(0, None, None, None))(xs, y, s, b),
            lambda f: torch.func.jacrev(f)(x, y, s, b),
            lambda f: torch.func.jacfwd(f, argnums=1)(x, y, s, b),
            lambda f: torch.func.hessian(lambda x: (f(x, y, s, b) ** 2).sum())(x),
        ):
            torch.testing.assert_close(tr(lazy), tr(dense), **TOL)


def test_kernel_product_transforms():
    x, y, _, b = _args("gauss")

    def kp(x, y, b):
        return pykp.kernel_product(x, y, b, "gaussian", sigma=0.8)

    def dense(x, y, b):
        return torch.exp(-_sqd(x, y) / 0.8**2) @ b

    bs = torch.randn(4, 8, 2, dtype=D)
    torch.testing.assert_close(torch.func.vmap(kp, in_dims=(None, None, 0))(x, y, bs),
                               torch.func.vmap(dense, in_dims=(None, None, 0))(x, y, bs), **TOL)
    for tr in (
        lambda f: torch.func.grad(lambda x: f(x, y, b).pow(2).sum())(x),
        lambda f: torch.func.jacfwd(f, argnums=1)(x, y, b),
        lambda f: torch.func.hessian(lambda y: f(x, y, b).pow(2).sum())(y),
    ):
        torch.testing.assert_close(tr(kp), tr(dense), **TOL)


def test_float32_vmap_and_grad():
    x, y, s, b = (a.float() for a in _args("gauss"))
    xs = torch.randn(3, 6, 3, dtype=torch.float32)
    rk = torch.func.vmap(torch.func.grad(lambda x: GAUSS(x, y, s, b).sum()))(xs)
    rd = torch.func.vmap(torch.func.grad(lambda x: gauss_dense(x, y, s, b).sum()))(xs)
    torch.testing.assert_close(rk, rd, rtol=1e-4, atol=1e-5)


def test_kernel_product_sigma_jacfwd_hessian():
    x, y, _, b = _args("gauss")
    s = torch.tensor(0.8, dtype=D)

    def kp(s):
        return pykp.kernel_product(x, y, b, "gaussian", sigma=s)

    def dense(s):
        return torch.exp(-_sqd(x, y) / s**2) @ b

    torch.testing.assert_close(torch.func.jacfwd(kp)(s), torch.func.jacfwd(dense)(s), **TOL)
    torch.testing.assert_close(torch.func.hessian(lambda s: kp(s).sum())(s),
                               torch.func.hessian(lambda s: dense(s).sum())(s), **TOL)


def test_kmin_vmap_jacrev_jacfwd():
    x, y, _, _ = _args("gauss")
    km = pykp.Genred("SqDist(x,y)", ["x=Vi(3)", "y=Vj(3)"], reduction_op="KMin", opt_arg=3, axis=1)

    def dense(x, y):
        return _sqd(x, y).topk(3, dim=-1, largest=False).values

    xs = torch.randn(4, 6, 3, dtype=D)
    torch.testing.assert_close(torch.func.vmap(km, in_dims=(0, None))(xs, y),
                               torch.func.vmap(dense, in_dims=(0, None))(xs, y), **TOL)
    for tr in (torch.func.jacrev, torch.func.jacfwd):
        torch.testing.assert_close(tr(km)(x, y), tr(dense)(x, y), **TOL)
