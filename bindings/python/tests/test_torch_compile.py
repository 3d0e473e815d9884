"""torch.compile of models calling pykp: the pykp::reduce operator (fake
implementation for shapes, autograd formula through libkp's gradient
reductions) lets Dynamo trace Genred, kernel_product and LazyTensor
reductions without graph breaks (fullgraph=True), forward and backward, with
the same values and gradients as eager pykp and dense torch. One test uses
the default backend (Inductor, which compiles C++ for the CPU); the others use
aot_eager, which traces the same graphs (Dynamo + AOTAutograd) faster."""
import pytest

torch = pytest.importorskip("torch")
if not hasattr(torch.library, "custom_op"):
    pytest.skip("torch.library.custom_op needs torch >= 2.4", allow_module_level=True)

import pykp  # noqa: E402
from pykp import LazyTensor  # noqa: E402

GAUSS = pykp.Genred("Exp(-SqDist(x,y)*s)*b", ["x=Vi(3)", "y=Vj(3)", "s=Pm(1)", "b=Vj(2)"], axis=1)
MIN = pykp.Genred("SqDist(x,y)", ["x=Vi(3)", "y=Vj(3)"], reduction_op="Min", axis=1)


def _data(dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(30, 3, dtype=dtype, generator=g)
    y = torch.randn(40, 3, dtype=dtype, generator=g)
    b = torch.randn(40, 2, dtype=dtype, generator=g)
    return x, y, b


def _sqd(x, y):
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)


def _no_breaks(fn, *args):
    torch._dynamo.reset()
    ex = torch._dynamo.explain(fn)(*args)
    assert ex.graph_break_count == 0, ex.break_reasons
    assert ex.graph_count == 1


def _check_fwd_bwd(fn, args, backend="aot_eager", tol=1e-10):
    """Compiled fn against eager fn: value and gradients w.r.t. every argument."""
    torch._dynamo.reset()
    cfn = torch.compile(fn, backend=backend, fullgraph=True)
    a1 = [a.clone().requires_grad_() for a in args]
    a2 = [a.clone().requires_grad_() for a in args]
    r1 = cfn(*a1)
    r2 = fn(*a2)
    torch.testing.assert_close(r1, r2, rtol=tol, atol=tol)
    g1 = torch.autograd.grad(r1, a1)
    g2 = torch.autograd.grad(r2, a2)
    for u, v in zip(g1, g2):
        torch.testing.assert_close(u, v, rtol=tol, atol=tol)


class Model(torch.nn.Module):
    """A learnable map, then a Gaussian kernel product and a Min reduction."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor([0.8], dtype=torch.float32))

    def forward(self, x, y, b):
        a = GAUSS(x * self.scale, y, self.scale**2, b)
        return (a**2).sum() + MIN(x, y * self.scale).sum()


def dense_model(scale, x, y, b):
    a = torch.exp(-_sqd(x * scale, y) * scale**2) @ b
    return (a**2).sum() + _sqd(x, y * scale).min(dim=1).values.sum()


def test_model_default_backend_forward_backward():
    torch._dynamo.reset()
    x, y, b = _data(torch.float32)
    model = Model()
    compiled = torch.compile(model, fullgraph=True)  # default backend: Inductor on the CPU
    x.requires_grad_()
    loss = compiled(x, y, b)
    loss.backward()
    ref_scale = model.scale.detach().clone().requires_grad_()
    xr = x.detach().clone().requires_grad_()
    ref = dense_model(ref_scale, xr, y, b)
    ref.backward()
    torch.testing.assert_close(loss, ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(model.scale.grad, ref_scale.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(x.grad, xr.grad, rtol=1e-4, atol=1e-4)


def test_genred_no_graph_break():
    x, y, b = _data()
    model = Model().double()
    _no_breaks(model, x, y, b)


def test_genred_fwd_bwd_matches_eager():
    x, y, b = _data()
    s = torch.tensor([0.6], dtype=torch.float64)
    _check_fwd_bwd(lambda x, y, s, b: GAUSS(x, y, s, b).pow(2).sum() + MIN(x, y).sum(), (x, y, s, b))


def test_number_parameter_and_lse_softmax():
    x, y, b = _data()
    lse = pykp.Genred("-SqDist(x,y)*s", ["x=Vi(3)", "y=Vj(3)", "s=Pm(1)"], reduction_op="LogSumExp", axis=0)
    soft = pykp.Genred("-SqDist(x,y)", ["x=Vi(3)", "y=Vj(3)", "b=Vj(2)"], reduction_op="SumSoftMaxWeight",
                       formula2="b", axis=1)

    def fn(x, y, b):
        return lse(x, y, 0.5).sum() + soft(x, y, b).pow(2).sum()

    _no_breaks(fn, x, y, b)
    _check_fwd_bwd(fn, (x, y, b))


def test_kernel_product_no_graph_break():
    x, y, b = _data()

    def fn(x, y, b):
        return pykp.kernel_product(x, y, b, "gaussian", sigma=0.7).pow(2).sum()

    _no_breaks(fn, x, y, b)
    _check_fwd_bwd(fn, (x, y, b))


def test_lazytensor_no_graph_break():
    x, y, b = _data()

    def fn(x, y, b):
        X, Y, B = LazyTensor(x[:, None, :]), LazyTensor(y[None, :, :]), LazyTensor(b[None, :, :])
        D2 = ((X - Y) ** 2).sum(-1)
        K = (-D2).exp()
        return (K * B).sum(1).pow(2).sum() + K.logsumexp(1).sum() + D2.min(0).sum()

    _no_breaks(fn, x, y, b)
    _check_fwd_bwd(fn, (x, y, b))


def test_operator_registration_opcheck():
    # torch's own consistency checks of a custom operator: schema, fake
    # implementation against the real one, autograd registration
    x, y, b = _data()
    s = torch.tensor([0.6], dtype=torch.float64)
    key = repr(GAUSS.key)
    torch.library.opcheck(torch.ops.pykp.reduce.default, (key, [x.requires_grad_(), y, s, b], -1, -1, -1))


def test_batched_inputs_and_changing_sizes():
    # libkp batch dimensions through the fake implementation's shapes, and a
    # second size (Dynamo recompiles with symbolic sizes)
    def fn(x, y, s, b):
        return GAUSS(x, y, s, b)

    torch._dynamo.reset()
    cfn = torch.compile(fn, backend="aot_eager", fullgraph=True)
    s = torch.tensor([0.6], dtype=torch.float64)
    for n, m in ((7, 9), (11, 13), (17, 5)):
        x = torch.randn(2, n, 3, dtype=torch.float64)
        y = torch.randn(1, m, 3, dtype=torch.float64)
        b = torch.randn(2, m, 2, dtype=torch.float64)
        r = cfn(x, y, s, b)
        ref = torch.exp(-((x[:, :, None, :] - y[:, None, :, :]) ** 2).sum(-1) * s) @ b
        assert r.shape == (2, n, 2)
        torch.testing.assert_close(r, ref)


def test_vmap_of_the_operator_compiled_and_eager():
    # torch.func.vmap inside a compiled function reaches pykp::reduce's vmap
    # rule (the vmapped dimension as a libkp batch dimension); the same rule
    # serves vmap over the operator in eager mode
    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 3, dtype=torch.float64, generator=g)
    ys = torch.randn(8, 4, 3, dtype=torch.float64, generator=g)  # vmapped dimension 1
    b = torch.randn(8, 2, dtype=torch.float64, generator=g)
    s = torch.tensor([0.7], dtype=torch.float64)

    def f(ys):
        return torch.func.vmap(GAUSS, in_dims=(None, 1, None, None))(x, ys, s, b)

    ref = torch.stack([torch.exp(-_sqd(x, ys[:, k]) * s) @ b for k in range(4)])
    torch._dynamo.reset()
    torch.testing.assert_close(torch.compile(f, backend="aot_eager", fullgraph=True)(ys), ref)
    op = lambda y: torch.ops.pykp.reduce(repr(GAUSS.key), [x, y, s, b], -1, -1, -1)[0]  # noqa: E731
    torch.testing.assert_close(torch.func.vmap(op, in_dims=1)(ys), ref)
    one_d = pykp.Genred("Exp(-SqDist(x,y))*b", ["x=Vi(1)", "y=Vj(1)", "b=Vj(1)"], axis=1)
    xs1 = torch.randn(3, 6, dtype=torch.float64, generator=g)  # samples of 1-D Vi(1) arrays
    y1 = torch.randn(8, dtype=torch.float64, generator=g)
    b1 = torch.randn(8, 1, dtype=torch.float64, generator=g)
    op1 = lambda x: torch.ops.pykp.reduce(repr(one_d.key), [x, y1, b1], -1, -1, -1)[0]  # noqa: E731
    ref1 = torch.stack([torch.exp(-(xs1[k][:, None] - y1[None, :]) ** 2) @ b1 for k in range(3)])
    torch.testing.assert_close(torch.func.vmap(op1)(xs1), ref1)


def test_float16_and_complex_compile_without_graph_breaks():
    """The fake implementation allocates what libkp writes: float16 values, and
    complex ones (out_dim / 2 numbers) for complex calls."""
    g = pykp.Genred("Exp(-SqDist(x,y))*b", ["x = Vi(3)", "y = Vj(3)", "b = Vj(2)"], axis=1)
    x, y, b = torch.randn(50, 3).half(), torch.randn(40, 3).half(), torch.randn(40, 2).half()
    r = torch.compile(lambda x, y, b: g(x, y, b) * 2, fullgraph=True)(x, y, b)
    assert r.dtype == torch.float16
    torch.testing.assert_close(r, 2 * g(x, y, b), rtol=0, atol=0)
    z, w = torch.randn(50, 2, dtype=torch.complex128), torch.randn(40, 2, dtype=torch.complex128)
    g2 = pykp.Genred("ComplexMult(z,w)", ["z = Vi(4)", "w = Vj(4)"], axis=1)
    r2 = torch.compile(lambda z, w: g2(z, w), fullgraph=True)(z, w)
    assert r2.dtype == torch.complex128 and r2.shape == (50, 2)
    torch.testing.assert_close(r2, z * w.sum(0), rtol=1e-12, atol=1e-12)
