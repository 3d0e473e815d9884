"""Bad input gives a clear Python exception carrying libkp's message (or a
correct result), never a crash: malformed formulas, shapes, dtypes, devices,
sizes, unknown names, and the status -> exception mapping."""
import numpy as np
import pytest
import torch

import pykp
from pykp import _call, _lib

GAUSS = ("Exp(-SqDist(x,y)*g)*b", ["x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(1)"])


def args(n=10, m=8, dtype=torch.float64):
    return torch.rand(n, 3, dtype=dtype), torch.rand(m, 3, dtype=dtype), torch.tensor([1.0], dtype=dtype), torch.rand(m, 1, dtype=dtype)


def test_parse_errors_are_value_errors_with_libkp_message():
    with pytest.raises(ValueError, match=r"col \d+: unknown function 'Exq'") as e:
        pykp.Genred("Exq(-SqDist(x,y))", ["x = Vi(3)", "y = Vj(3)"], axis=1)
    assert isinstance(e.value, pykp.KpError) and e.value.status == "KP_ERR_PARSE"
    with pytest.raises(ValueError):
        pykp.Genred("Exp(-SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], axis=1)  # unbalanced
    with pytest.raises(ValueError, match="z"):
        pykp.Genred("x+z", ["x = Vi(3)"], axis=1)  # unknown name
    with pytest.raises(ValueError) as e:
        pykp.Genred("x+y", ["x = Vi(3)", "y = Vj(2)"], axis=1)  # dimension mismatch
    assert e.value.status == "KP_ERR_SHAPE"
    with pytest.raises(ValueError):
        pykp.Genred("x", ["x = Vi(3"], axis=1)  # malformed alias
    with pytest.raises(ValueError):
        pykp.Genred("", [], axis=1)


def test_reduction_option_errors():
    f, a = GAUSS
    with pytest.raises(ValueError, match="unknown reduction_op"):
        pykp.Genred(f, a, reduction_op="Mean", axis=1)
    with pytest.raises(ValueError, match="opt_arg"):
        pykp.Genred("SqDist(x,y)", a[:2], reduction_op="KMin", axis=1)
    with pytest.raises(ValueError, match="formula2"):
        pykp.Genred("SqDist(x,y)", a[:2], reduction_op="SumSoftMaxWeight", axis=1)
    with pytest.raises(ValueError, match="axis"):
        pykp.Genred(f, a, axis=2)
    g = pykp.Genred(f, a, axis=1)
    with pytest.raises(TypeError, match="ranges_i must be a NumPy array or a torch tensor"):
        g(*args(), ranges=(1, 2, 3, 4, 5, 6))
    with pytest.raises(ValueError, match="backend='GPU_1D', but the arrays are on cpu; .*never copies"):
        g(*args(), backend="GPU_1D")  # pykp computes where the arrays are
    assert g(*args(), backend="CPU").shape == (10, 1)


def test_shape_errors_name_the_argument():
    g = pykp.Genred(*GAUSS, axis=1)
    x, y, s, b = args()
    with pytest.raises(ValueError, match="argument 0"):
        g(torch.rand(10, 4, dtype=torch.float64), y, s, b)  # last dimension 4, expected 3
    with pytest.raises(ValueError, match="rows"):
        g(x, y, s, torch.rand(9, 1, dtype=torch.float64))  # 9 j-points vs 8
    with pytest.raises(ValueError, match="argument"):
        g(x, y, torch.tensor([1.0, 2.0], dtype=torch.float64), b)  # Pm(1) given 2 values
    with pytest.raises(ValueError, match="takes 4 arguments"):
        g(x, y, s)
    with pytest.raises(ValueError):
        g(torch.rand(2, 10, 3, dtype=torch.float64), torch.rand(3, 8, 3, dtype=torch.float64), s, b)  # batch 2 vs 3
    with pytest.raises(ValueError):
        g(torch.rand(3, dtype=torch.float64), y, s, b)  # 1-D array for a Vi(3)


def test_dtype_errors_are_type_errors():
    g = pykp.Genred(*GAUSS, axis=1)
    x, y, s, b = args()
    with pytest.raises(TypeError, match="mixed dtypes"):
        g(x.float(), y, s, b)
    with pytest.raises(TypeError, match="mixed dtypes"):
        g(x.numpy(), y.numpy().astype(np.float32), s.numpy(), b.numpy())
    with pytest.raises(TypeError, match="bfloat16"):  # float16 is a libkp dtype (test_dtypes.py), bfloat16 not
        g(x.bfloat16(), y.bfloat16(), s.bfloat16(), b.bfloat16())
    with pytest.raises(TypeError, match="int64"):
        g(torch.ones(10, 3, dtype=torch.int64), y, s, b)
    with pytest.raises(TypeError, match="mixed dtypes"):  # complex meets real of its precision only
        g(x.numpy().astype(np.complex64), y.numpy(), s.numpy(), b.numpy())
    with pytest.raises(TypeError, match="mix NumPy"):
        g(x, y.numpy(), s, b)
    with pytest.raises(TypeError):
        g([[0.0, 1.0, 2.0]], y, s, b)  # a list is not an array
    with pytest.raises(TypeError):
        g("x", "y", "s", "b")
    # the libkp status itself maps to TypeError
    assert isinstance(_lib.error_for(3, "dtype"), TypeError)


def test_other_devices_are_refused_without_copies():
    # libkp reads host memory and CUDA device memory: other torch devices are
    # refused by name (CUDA tensors: tests/test_cuda_tensors.py, test_cuda_mock.py)
    g = pykp.Genred(*GAUSS, axis=1)
    x, y, s, b = args()
    meta = torch.empty(10, 3, dtype=torch.float64, device="meta")
    msg = "on device 'meta'; libkp reads host memory .CPU. and CUDA device memory only"
    with pytest.raises(RuntimeError, match=msg):
        g(meta, y, s, b)
    with pytest.raises(RuntimeError, match=msg):
        pykp.LazyTensor(meta[:, None, :])
    with pytest.raises(RuntimeError, match=msg):
        pykp.kernel_product(meta, y, b, "gaussian")


def test_k_larger_than_points_is_value_error():
    g = pykp.Genred("SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)"], reduction_op="ArgKMin", axis=1, opt_arg=9)
    with pytest.raises(ValueError, match="K = 9"):
        g(*args()[:2])  # 8 points


def test_out_of_memory_is_memory_error():
    # A parameter gradient sums its rows through a temporary of rows x dim
    # values: 2^40 rows read by stride-0 broadcasting need 8 TB, which
    # malloc refuses before any work starts.
    f = _lib.formula(("parse", "Sum_Reduction(x*p*y,1)", ("x = Vi(1)", "p = Pm(1)", "y = Vj(1)")))
    g = f.grad(1)
    assert g.sums_rows
    n = 2**40
    big = np.broadcast_to(np.zeros((1, 1)), (n, 1))
    with pytest.raises(MemoryError) as e:
        _call.launch(g, [big, np.ones(1), np.ones((1, 1)), big])
    assert e.value.status == "KP_ERR_OOM"
    assert isinstance(_lib.error_for(6, "oom"), MemoryError)


def test_status_mapping():
    assert isinstance(_lib.error_for(1, "m"), ValueError)
    assert isinstance(_lib.error_for(2, "m"), ValueError)
    assert isinstance(_lib.error_for(4, "m"), ValueError)
    assert isinstance(_lib.error_for(7, "m"), ValueError)
    assert isinstance(_lib.error_for(8, "m"), NotImplementedError)
    assert isinstance(_lib.error_for(9, "m"), RuntimeError)
    assert "libkp: m" in str(_lib.error_for(1, "m"))
    assert _lib.status_string(0) == "success"


def test_nan_inputs_propagate_and_aliases_not_in_the_formula_still_take_an_argument():
    g = pykp.Genred("SqDist(x,y)", ["x = Vi(3)", "y = Vj(3)", "unused = Vj(5)"], axis=1)
    x, y = torch.rand(4, 3, dtype=torch.float64), torch.rand(6, 3, dtype=torch.float64)
    x[1] = float("nan")
    out = g(x, y, torch.rand(6, 5, dtype=torch.float64))
    assert torch.isnan(out[1]).all() and torch.isfinite(out[[0, 2, 3]]).all()


def test_lazytensor_bad_inputs():
    with pytest.raises(TypeError):
        pykp.LazyTensor("abc")
    with pytest.raises(TypeError):
        pykp.LazyTensor(True)
    with pytest.raises(TypeError):
        pykp.LazyTensor(torch.ones(3, 1, 2, dtype=torch.int64))
    xi = pykp.LazyTensor(torch.rand(5, 1, 3, dtype=torch.float64))
    with pytest.raises(TypeError, match="no array|dtype"):
        (pykp.LazyTensor(1.0) * 2.0).sum(dim=1)
    with pytest.raises(ValueError):
        xi.sum(dim=5)
    with pytest.raises(ValueError):
        xi.Kmin(0, dim=1)
