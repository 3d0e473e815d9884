"""
pykp.shapes -- LDDMM geodesic shooting and registration of point clouds,
curves and triangle surfaces, on libkp reductions (pykp.Genred) and torch.

    from pykp import shapes
    src, tgt = shapes.read_mesh("a.vtk"), shapes.read_mesh("b.vtk")
    model = shapes.Deformation(shapes.GaussianKernel(0.2), integrator="rk4", steps=10)
    data = shapes.Varifold(shapes.GaussianKernel(0.05))
    result = shapes.register(src, tgt, model, data, gamma=0.1)
    shapes.write_mesh("deformed.vtk", result.deformed)

See docs/shapes.md for the model and its equations.
"""
from .kernels import CauchyKernel, GaussianKernel, Kernel, SumOfGaussiansKernel, as_kernel
from .model import INTEGRATORS, Deformation, Shooting

__all__ = [
    "Kernel",
    "GaussianKernel",
    "CauchyKernel",
    "SumOfGaussiansKernel",
    "as_kernel",
    "Deformation",
    "Shooting",
    "INTEGRATORS",
]
from .shape import Shape
from .data import Current, DataTerm, KernelNorm, SinkhornDivergence, Varifold
from .register import OPTIMIZERS, Registration, deform, register

__all__ += ["Shape", "DataTerm", "KernelNorm", "Current", "Varifold", "SinkhornDivergence",
            "register", "Registration", "deform", "OPTIMIZERS"]
from .io import read_mesh, write_mesh
from .samples import bumped_ellipsoid, circle, icosphere

__all__ += ["read_mesh", "write_mesh", "icosphere", "bumped_ellipsoid", "circle"]
