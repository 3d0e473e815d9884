"""pykp.shapes registration (a shape matched to a deformed copy of itself
recovers it: the data term drops by 100x or more), its options and errors, and
mesh I/O through meshio."""
import io
import os
import subprocess
import sys

import pytest
import torch

from pykp import shapes

F64 = torch.float64


def _deformed_copy(source, model, scale, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = scale * torch.randn(source.points.shape, generator=g, dtype=F64)
    return source.with_points(model.shoot(source.points, p).q)


def test_surface_registration_recovers_a_deformed_copy():
    src = shapes.icosphere(1)
    model = shapes.Deformation("gaussian", 0.6, "rk4", 5)
    tgt = _deformed_copy(src, model, 0.15)
    data = shapes.Varifold("gaussian", 0.4)
    d0 = float(data(src, tgt))
    out = io.StringIO()
    res = shapes.register(src, tgt, model, data, gamma=1e-4, iterations=40, stream=out)
    d1 = float(data(res.deformed, tgt))
    assert d1 < d0 / 100, (d0, d1)
    assert res.history[-1]["data"] == pytest.approx(d1, rel=1e-10)
    lines = out.getvalue().splitlines()
    assert len(lines) == len(res.history) and "loss" in lines[0]
    # the loss the optimizer saw never goes up between accepted iterates
    losses = [h["loss"] for h in res.history]
    assert all(b <= a * (1 + 1e-12) for a, b in zip(losses, losses[1:]))
    assert res.momenta.shape == src.points.shape and torch.equal(res.control_points, src.points)
    # the deformed shape is the source shot with the returned momenta
    assert (model.shoot(src.points, res.momenta).q - res.deformed.points).abs().max() < 1e-12


@pytest.mark.parametrize("term", ["current", "oriented", "mmd"])
def test_curve_registration_other_terms(term):
    src = shapes.circle(24, 1.0)
    model = shapes.Deformation("gaussian", 0.8, "ralston", 6)
    tgt = _deformed_copy(src, model, 0.1, seed=1)
    data = {"current": shapes.Current("gaussian", 0.5),
            "oriented": shapes.Varifold("gaussian", 0.5, orientation="oriented"),
            "mmd": shapes.KernelNorm("gaussian", 0.3)}[term]
    d0 = float(data(src, tgt))
    res = shapes.register(src, tgt, model, data, gamma=1e-5, iterations=60, quiet=True)
    assert float(data(res.deformed, tgt)) < d0 / 100


def test_control_points_multiscale_and_callback(capsys):
    """Control points on a coarse grid move the source's points by the flow;
    two stages of data-term widths, coarse to fine."""
    src = shapes.circle(30, 1.0)
    tgt = src.with_points(src.points * torch.tensor([1.3, 0.8], dtype=F64) + 0.1)
    t = torch.linspace(-1.5, 1.5, 5, dtype=F64)
    grid = torch.stack(torch.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)
    model = shapes.Deformation(shapes.SumOfGaussiansKernel([1.0, 0.5]), integrator="euler", steps=5)
    data = shapes.Varifold("gaussian", 0.3)
    seen = []
    res = shapes.register(src, tgt, model, data, gamma=1e-5, iterations=[15, 25], scales=[0.6, 0.2],
                          control_points=grid, callback=seen.append, quiet=True)
    assert capsys.readouterr().err == ""
    assert seen == res.history and {h["stage"] for h in res.history} == {0, 1}
    fine = shapes.Varifold("gaussian", 0.2)
    assert float(fine(res.deformed, tgt)) < float(fine(src, tgt)) / 100
    assert torch.equal(res.control_points, grid)
    moved = model.flow(src.points, grid, res.momenta)
    assert (moved - res.deformed.points).abs().max() < 1e-12


def test_adam_and_model_scales():
    src = shapes.circle(16)
    tgt = src.with_points(src.points * 1.2)
    model = shapes.Deformation("cauchy", 0.5, "euler", 3)
    data = shapes.Varifold("gaussian", 0.5)
    res = shapes.register(src, tgt, model, data, optimizer="adam", lr=0.02, iterations=[10, 10],
                          model_scales=[1.0, 0.7], quiet=True)
    assert res.model.kernel.sigma == 0.7 and isinstance(res.model.kernel, shapes.CauchyKernel)
    assert res.history[-1]["data"] < res.history[0]["data"]


def test_register_bad_arguments():
    src = shapes.circle(8)
    model, data = shapes.Deformation("gaussian", 0.5), shapes.Varifold("gaussian", 0.5)
    with pytest.raises(ValueError, match="optimizer"):
        shapes.register(src, src, model, data, optimizer="newton")
    with pytest.raises(ValueError, match="needs lr"):
        shapes.register(src, src, model, data, optimizer="sgd")
    with pytest.raises(ValueError, match="model_scales"):
        shapes.register(src, src, model, data, scales=[1, 2], model_scales=[1])
    with pytest.raises(ValueError, match="iterations"):
        shapes.register(src, src, model, data, iterations=[3, 4])
    with pytest.raises(ValueError, match="momenta"):
        shapes.register(src, src, model, data, momenta=torch.zeros(3, 2, dtype=F64))
    with pytest.raises(ValueError, match="control_points"):
        shapes.register(src, src, model, data, control_points=torch.zeros(3, 3, dtype=F64))
    with pytest.raises(TypeError, match="model"):
        shapes.register(src, src, data, data)
    with pytest.raises(TypeError, match="data_term"):
        shapes.register(src, src, model, model)
    with pytest.raises(ValueError, match="a curve and a surface"):
        shapes.register(shapes.Shape(torch.rand(4, 3, dtype=F64), [[0, 1], [1, 2]]), shapes.icosphere(0),
                        model, data, quiet=True)


# ----------------------------------------------------------------- mesh I/O


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # meshio's STL format sniffing
@pytest.mark.parametrize("ext", ["vtk", "ply", "obj", "stl"])
def test_mesh_roundtrip(tmp_path, ext):
    pytest.importorskip("meshio")
    s = shapes.bumped_ellipsoid(shapes.icosphere(1))
    path = str(tmp_path / ("m." + ext))
    shapes.write_mesh(path, s)
    r = shapes.read_mesh(path)
    assert r.kind == "surface"
    # STL stores float32 and unshared vertices: compare the triangles' geometry
    tol = 1e-6 if ext == "stl" else 1e-12
    assert (r.centers().sort(0).values - s.centers().sort(0).values).abs().max() < tol
    assert abs(float(r.measures().sum() - s.measures().sum())) < tol


def test_curve_and_cloud_io(tmp_path):
    pytest.importorskip("meshio")
    c = shapes.circle(12, 2.0)
    shapes.write_mesh(str(tmp_path / "c.vtk"), c, point_data={"momenta": torch.ones(12, 2, dtype=F64)})
    r = shapes.read_mesh(str(tmp_path / "c.vtk"), dim=2)
    assert r.kind == "curve" and torch.allclose(r.points, c.points) and torch.equal(r.cells, c.cells)
    cloud = shapes.Shape(torch.rand(10, 3, dtype=F64))
    shapes.write_mesh(str(tmp_path / "p.vtk"), cloud)
    assert shapes.read_mesh(str(tmp_path / "p.vtk")).kind == "points"
    with pytest.raises(TypeError, match="Shape"):
        shapes.write_mesh(str(tmp_path / "x.vtk"), c.points)


def test_example_runs_small(tmp_path):
    """examples/python/shapes_registration.py end to end on a small sphere."""
    pytest.importorskip("matplotlib")
    pytest.importorskip("meshio")
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
    script = os.path.join(root, "examples", "python", "shapes_registration.py")
    env = dict(os.environ)  # the pykp this test imports: installed, or on the caller's PYTHONPATH
    help_ = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True, env=env)
    assert help_.returncode == 0 and "usage" in help_.stdout
    run = subprocess.run([sys.executable, script, "--level", "1", "--iterations", "3", "--steps", "4",
                          "--data-scales", "0.5", "--out", str(tmp_path), "--quiet"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    for name in ("before_after.png", "energy.png", "deformed.vtk"):
        assert (tmp_path / name).stat().st_size > 0, name


def test_registration_with_the_sinkhorn_divergence():
    """pykp.ot's Sinkhorn divergence as the data term (skipped without pykp.ot)."""
    pytest.importorskip("pykp.ot")
    src = shapes.icosphere(1)
    tgt = shapes.bumped_ellipsoid(src)
    term = shapes.SinkhornDivergence(blur=0.05)
    assert abs(float(term(src, src))) < 1e-10
    res = shapes.register(src, tgt, shapes.Deformation("gaussian", 0.6, "ralston", 5), term,
                          gamma=1e-4, iterations=15, quiet=True)
    assert res.history[-1]["data"] < res.history[0]["data"] / 100


@pytest.mark.parametrize("normalize", ["row", "sinkhorn"])
def test_registration_with_a_normalized_hamiltonian(normalize):
    src = shapes.circle(20, 1.0)
    model = shapes.Deformation("gaussian", 0.8, "ralston", 4, normalize=normalize, sinkhorn_iters=3)
    tgt = _deformed_copy(src, model, 0.5, seed=2)
    data = shapes.Varifold("gaussian", 0.5)
    d0 = float(data(src, tgt))
    res = shapes.register(src, tgt, model, data, gamma=1e-5, iterations=40, quiet=True)
    assert float(data(res.deformed, tgt)) < d0 / 100
