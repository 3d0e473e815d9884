"""kernel_product: every kernel, sums and products of kernels on several feature
pairs, modes sum and lse, NumPy and torch, against dense float64 references."""
import pytest
import torch

import pykp
from conftest import assert_close

N, M = 33, 27


def sq(x, y):
    return ((x[:, None] - y[None]) ** 2).sum(-1)


DENSE = {
    "gaussian": lambda x, y, s: torch.exp(-sq(x, y) / s**2),
    "laplacian": lambda x, y, s: torch.exp(-sq(x, y).sqrt() / s),
    "cauchy": lambda x, y, s: 1 / (1 + sq(x, y) / s**2),
    "inverse_multiquadric": lambda x, y, s: 1 / torch.sqrt(1 + sq(x, y) / s**2),
    "energy": lambda x, y, s: -sq(x, y).sqrt(),
    "linear": lambda x, y, s: x @ y.t(),
}


@pytest.mark.parametrize("kernel", sorted(DENSE))
@pytest.mark.parametrize("frontend", ["torch", "numpy"])
def test_each_kernel(kernel, frontend):
    x, y, b = torch.rand(N, 3), torch.rand(M, 3), torch.rand(M, 2)
    ref = DENSE[kernel](x, y, 0.6) @ b
    args = (x, y, b) if frontend == "torch" else (x.numpy(), y.numpy(), b.numpy())
    out = pykp.kernel_product(*args, kernel, sigma=0.6)
    assert type(out) is type(args[0])
    assert_close(out, ref)


def test_vector_b_1d_and_float32():
    x, y, b = torch.rand(N, 3), torch.rand(M, 3), torch.rand(M)
    out = pykp.kernel_product(x, y, b, "gaussian", sigma=0.5)
    assert out.shape == (N,)
    assert_close(out, DENSE["gaussian"](x, y, 0.5) @ b)
    out32 = pykp.kernel_product(x.float(), y.float(), b.float(), "cauchy", sigma=0.5)
    assert out32.dtype == torch.float32
    assert_close(out32, (DENSE["cauchy"](x, y, 0.5) @ b).float(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel", ["gaussian", "laplacian", "cauchy", "inverse_multiquadric"])
def test_lse_mode(kernel):
    x, y, b = torch.rand(N, 3), torch.rand(M, 3), torch.randn(M, 1)
    out = pykp.kernel_product(x, y, b, kernel, sigma=0.3, mode="lse")
    ref = torch.logsumexp(torch.log(DENSE[kernel](x, y, 0.3)) + b[:, 0][None], 1, keepdim=True)
    assert_close(out, ref)
    # vector b: elementwise log-sum-exp
    b2 = torch.randn(M, 3)
    out2 = pykp.kernel_product(x, y, b2, kernel, sigma=0.3, mode="lse")
    ref2 = torch.logsumexp(torch.log(DENSE[kernel](x, y, 0.3))[:, :, None] + b2[None], 1)
    assert_close(out2, ref2)


def test_expressions_on_several_feature_pairs():
    x, y = torch.rand(N, 3), torch.rand(M, 3)
    u, v = torch.randn(N, 3), torch.randn(M, 3)
    b = torch.rand(M, 1)
    X, Y = {"x": x, "u": u}, {"y": y, "v": v}
    g = DENSE["gaussian"](x, y, 0.4)
    lin = u @ v.t()
    cases = {
        "gaussian(x,y) * linear(u,v)**2": g * lin**2,
        "gaussian(x,y)*linear(u,v)": g * lin,
        "gaussian(x,y) + 0.5*cauchy(u,v)": g + 0.5 * DENSE["cauchy"](u, v, 0.4),
        "(gaussian(x,y) - laplacian(x,y)) / 2": (g - DENSE["laplacian"](x, y, 0.4)) / 2,
        "-energy(x,y) * inverse_multiquadric(u,v)**-1.5": -DENSE["energy"](x, y, 0) * DENSE["inverse_multiquadric"](u, v, 0.4) ** -1.5,
        "gaussian(x,y)**0.5": g**0.5,
    }
    for expr, K in cases.items():
        assert_close(pykp.kernel_product(X, Y, b, expr, sigma=0.4), K @ b)
    # per-pair sigmas, keyed by either feature or the pair
    K = DENSE["gaussian"](x, y, 0.4) * DENSE["gaussian"](u, v, 2.0)
    for sig in ({"x": 0.4, "u": 2.0}, {"y": 0.4, "v": 2.0}, {"x,y": 0.4, ("u", "v"): 2.0}):
        assert_close(pykp.kernel_product(X, Y, b, "gaussian(x,y) * gaussian(u,v)", sigma=sig), K @ b)
    # log mode of a product is the sum of the logs
    out = pykp.kernel_product(X, Y, b, "gaussian(x,y) * gaussian(u,v)", sigma={"x": 0.4, "u": 2.0}, mode="lse")
    assert_close(out, torch.logsumexp(torch.log(K) + b[:, 0][None], 1, keepdim=True))


def test_sigma_tensor_gradient_and_dtype_cast():
    x, y, b = torch.rand(N, 3), torch.rand(M, 3), torch.rand(M, 1)
    s = torch.tensor(0.5, requires_grad=True)
    out = pykp.kernel_product(x, y, b, "gaussian", sigma=s)
    (gs,) = torch.autograd.grad(out.sum(), [s])
    s2 = torch.tensor(0.5, requires_grad=True)
    (rs,) = torch.autograd.grad((DENSE["gaussian"](x, y, s2) @ b).sum(), [s2])
    assert_close(gs, rs)
    # a float64 sigma with float32 data is cast (a parameter, not data)
    out32 = pykp.kernel_product(x.float(), y.float(), b.float(), "gaussian", sigma=torch.tensor([0.5]))
    assert out32.dtype == torch.float32


def test_kernel_product_errors():
    x, y, b = torch.rand(N, 3), torch.rand(M, 3), torch.rand(M, 1)
    with pytest.raises(ValueError, match="unknown kernel"):
        pykp.kernel_product(x, y, b, "gausian")
    with pytest.raises(ValueError, match="unknown kernel"):
        pykp.kernel_product({"x": x}, {"y": y}, b, "gaussian(x,y) * foo(x,y)")
    with pytest.raises(ValueError, match="col"):
        pykp.kernel_product({"x": x}, {"y": y}, b, "gaussian(x,y) *")
    with pytest.raises(ValueError, match="mode"):
        pykp.kernel_product(x, y, b, "gaussian", mode="max")
    with pytest.raises(ValueError, match="features"):
        pykp.kernel_product({"x": x}, {"y": y}, b, "gaussian(y,x)")
    with pytest.raises(ValueError, match="dimensions"):
        pykp.kernel_product(x, torch.rand(M, 2), b, "gaussian")
    with pytest.raises(ValueError, match="sigma"):
        pykp.kernel_product({"x": x}, {"y": y}, b, "gaussian(x,y)", sigma={"z": 1.0})
    with pytest.raises(ValueError):
        pykp.kernel_product(x, y, torch.rand(M + 1, 1), "gaussian")
    with pytest.raises(TypeError):
        pykp.kernel_product(x, y.numpy(), b, "gaussian")
    with pytest.raises(TypeError):
        pykp.kernel_product(x, y.float(), b, "gaussian")
