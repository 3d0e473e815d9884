"""KeOps tutorials run on pykp as their users write them, against the same
code on dense float64 torch: the LDDMM surface registration (symbolic
variables Vi(0, 3) whose reductions are called later, Hamiltonian shooting
with create_graph, a varifold data term, L-BFGS) and the RBF interpolation
(LazyTensor.solve on x[:, None, :] / x[None, :, :] spellings)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.autograd import grad  # noqa: E402

from pykp import LazyTensor, Vi, Vj  # noqa: E402

D = torch.float64


# ----------------------------------------------------------------- kernels, as the LDDMM tutorial writes them


def gauss_kernel(sigma):
    x, y, b = Vi(0, 3), Vj(1, 3), Vj(2, 3)
    gamma = 1 / (sigma * sigma)
    D2 = x.sqdist(y)
    K = (-D2 * gamma).exp()
    return (K * b).sum_reduction(axis=1)


def gauss_lin_kernel(sigma):
    x, y, u, v, b = Vi(0, 3), Vj(1, 3), Vi(2, 3), Vj(3, 3), Vj(4, 1)
    gamma = 1 / (sigma * sigma)
    D2 = x.sqdist(y)
    K = (-D2 * gamma).exp() * (u * v).sum() ** 2
    return (K * b).sum_reduction(axis=1)


def dense_gauss_kernel(sigma):
    def K(x, y, b):
        return torch.exp(-((x[:, None, :] - y[None, :, :]) ** 2).sum(-1) / sigma**2) @ b

    return K


def dense_gauss_lin_kernel(sigma):
    def K(x, y, u, v, b):
        k = torch.exp(-((x[:, None, :] - y[None, :, :]) ** 2).sum(-1) / sigma**2)
        return (k * (u @ v.T) ** 2) @ b

    return K


# ----------------------------------------------------------------- the tutorial's model, unchanged


def ralston(ode, x0, nt, deltat=1.0):
    x = tuple(a.clone() for a in x0)
    dt = deltat / nt
    for _ in range(nt):
        xdot = ode(*x)
        xi = tuple(a + (2 * dt / 3) * ad for a, ad in zip(x, xdot))
        xdoti = ode(*xi)
        x = tuple(a + (0.25 * dt) * (ad + 3 * adi) for a, ad, adi in zip(x, xdot, xdoti))
    return x


def hamiltonian(K):
    def H(p, q):
        return 0.5 * (p * K(q, q, p)).sum()

    return H


def hamiltonian_system(K):
    H = hamiltonian(K)

    def HS(p, q):
        Gp, Gq = grad(H(p, q), (p, q), create_graph=True)
        return -Gq, Gp

    return HS


def lddmm_loss(K, dataloss, gamma=0.1, nt=5):
    def loss(p0, q0):
        _, q = ralston(hamiltonian_system(K), (p0, q0), nt)
        return gamma * hamiltonian(K)(p0, q0) + dataloss(q)

    return loss


def varifold_loss(FS, VT, FT, K):
    def center_length_normal(F, V):
        V0, V1, V2 = V.index_select(0, F[:, 0]), V.index_select(0, F[:, 1]), V.index_select(0, F[:, 2])
        centers, normals = (V0 + V1 + V2) / 3, 0.5 * torch.cross(V1 - V0, V2 - V0, dim=1)
        length = (normals**2).sum(dim=1)[:, None].sqrt()
        return centers, length, normals / length

    CT, LT, NTn = center_length_normal(FT, VT)
    cst = (LT * K(CT, CT, NTn, NTn, LT)).sum()

    def loss(VS):
        CS, LS, NSn = center_length_normal(FS, VS)
        return cst + (LS * K(CS, CS, NSn, NSn, LS)).sum() - 2 * (LS * K(CS, CT, NSn, NTn, LT)).sum()

    return loss


def icosphere(subdivisions=1):
    """Vertices (V, 3) and triangles (F, 3) of a subdivided icosahedron on the unit sphere."""
    t = (1 + 5**0.5) / 2
    verts = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t), (0, 1, -t),
             (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2),
             (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5), (2, 4, 11),
             (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    verts = [np.array(v, float) / np.linalg.norm(v) for v in verts]
    for _ in range(subdivisions):
        mid = {}

        def middle(a, b):
            key = (min(a, b), max(a, b))
            if key not in mid:
                m = verts[a] + verts[b]
                verts.append(m / np.linalg.norm(m))
                mid[key] = len(verts) - 1
            return mid[key]

        new = []
        for a, b, c in faces:
            ab, bc, ca = middle(a, b), middle(b, c), middle(c, a)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new
    return torch.tensor(np.array(verts), dtype=D), torch.tensor(faces, dtype=torch.int64)


def _shapes():
    VS, F = icosphere(2)  # 162 vertices, 320 triangles
    VT = VS * torch.tensor([1.3, 0.8, 1.0], dtype=D) + 0.1 * torch.sin(3 * VS[:, [1, 2, 0]])
    return VS, F, VT


def _losses(sigma_v=0.4, sigma_w=0.3):
    VS, F, VT = _shapes()
    VS.requires_grad_(True)  # as in the tutorial: q0 = VS.clone().detach().requires_grad_(True)
    ours = lddmm_loss(gauss_kernel(sigma_v), varifold_loss(F, VT, F, gauss_lin_kernel(sigma_w)))
    dense = lddmm_loss(dense_gauss_kernel(sigma_v), varifold_loss(F, VT, F, dense_gauss_lin_kernel(sigma_w)))
    return VS, ours, dense


def test_lddmm_surface_tutorial_matches_dense():
    """Loss and gradient in the momenta (a third derivative of the kernel
    sum: shooting differentiates H, the loss differentiates the shooting)."""
    q0, ours, dense = _losses()
    p0 = (0.05 * torch.randn(q0.shape, dtype=D, generator=torch.Generator().manual_seed(1))).requires_grad_(True)
    L = ours(p0, q0)
    (g,) = grad(L, p0)
    L_ref = dense(p0, q0)
    (g_ref,) = grad(L_ref, p0)
    assert abs(L.item() - L_ref.item()) <= 1e-10 * abs(L_ref.item())
    assert torch.allclose(g, g_ref, rtol=1e-8, atol=1e-10 * g_ref.abs().max().item())


def test_lddmm_surface_tutorial_registers():
    """The tutorial's optimization loop: L-BFGS on the momenta lowers the loss."""
    q0, ours, _ = _losses()
    p0 = torch.zeros(q0.shape, dtype=D, requires_grad=True)
    start = ours(p0, q0).item()
    optimizer = torch.optim.LBFGS([p0], max_iter=10)

    def closure():
        optimizer.zero_grad()
        L = ours(p0, q0)
        L.backward()
        return L

    optimizer.step(closure)
    assert ours(p0, q0).item() < 0.1 * start  # 1.66 -> 0.045 here


def test_rbf_interpolation_tutorial():
    """KeOps' RBF interpolation tutorial: (alpha I + K_xx) a = b with a
    Laplacian kernel written on x[:, None, :] and x[None, :, :], solved by
    LazyTensor.solve, against a dense solve; then the interpolant at new points."""
    g = torch.Generator().manual_seed(2)
    x = torch.rand(300, 2, dtype=D, generator=g)
    b = (x[:, :1] + (10 * x[:, 1:]).sin()) + 0.1 * torch.randn(300, 1, dtype=D, generator=g)

    def laplacian_kernel(x, y, sigma=0.1):
        x_i, y_j = LazyTensor(x[:, None, :]), LazyTensor(y[None, :, :])
        D_ij = ((x_i - y_j) ** 2).sum(-1)
        return (-D_ij.sqrt() / sigma).exp()

    alpha = 1.0
    a = laplacian_kernel(x, x).solve(b, alpha=alpha)
    dense = torch.exp(-torch.cdist(x, x) / 0.1)
    a_ref = torch.linalg.solve(dense + alpha * torch.eye(300, dtype=D), b)
    assert torch.allclose(a, a_ref, rtol=1e-5, atol=1e-6 * a_ref.abs().max().item())
    t = torch.rand(50, 2, dtype=D, generator=g)
    at_t = laplacian_kernel(t, x) @ a
    assert torch.allclose(at_t, torch.exp(-torch.cdist(t, x) / 0.1) @ a_ref, rtol=1e-5, atol=1e-6)
