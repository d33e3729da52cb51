"""Both denoisers are E(3)-equivariant and permutation-equivariant, padding included."""

import pytest
import torch

from diffsuite.domains.molecules.egnn import EGNN_PRESETS
from diffsuite.domains.molecules.tensor_product import TP_PRESETS

NETS = [("egnn", EGNN_PRESETS["XS"]), ("tensor_product", TP_PRESETS["XS"])]


def _random_orthogonal(reflect: bool, g: torch.Generator) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    if (torch.det(q) < 0) != reflect:
        q[:, 0] = -q[:, 0]
    return q


@pytest.mark.parametrize("name,make", NETS)
@pytest.mark.parametrize("reflect", [False, True])
def test_equivariance(name, make, reflect):
    g = torch.Generator().manual_seed(1)
    net = make(feature_dim=5, conditioned=True).double().eval()
    for p in net.parameters():  # away from the zero initialisation, so outputs carry signal
        p.data += 0.05 * torch.randn(p.shape, generator=g, dtype=p.dtype)
    B, N = 3, 7
    mask = torch.ones(B, N, 1, dtype=torch.float64)
    mask[1, 5:] = 0
    x = torch.randn(B, N, 8, generator=g, dtype=torch.float64) * mask
    cond = {"mask": mask, "property": torch.randn(B, generator=g, dtype=torch.float64),
            "drop": torch.tensor([False, True, False])}
    c_noise = torch.randn(B, generator=g, dtype=torch.float64)
    out = net(x, c_noise, cond)
    assert out[..., :3].abs().max() > 1e-3 and out[..., 3:].abs().max() > 1e-3

    Q = _random_orthogonal(reflect, g)
    t = torch.randn(1, 1, 3, generator=g, dtype=torch.float64)
    xr = torch.cat([(x[..., :3] @ Q.T + t) * mask, x[..., 3:]], -1)
    out_r = net(xr, c_noise, cond)
    torch.testing.assert_close(out_r[..., :3], out[..., :3] @ Q.T * mask, atol=1e-9, rtol=1e-7)
    torch.testing.assert_close(out_r[..., 3:], out[..., 3:], atol=1e-9, rtol=1e-7)

    perm = torch.randperm(5, generator=g)  # permute the real atoms of every molecule
    perm = torch.cat([perm, torch.arange(5, N)])
    out_p = net(x[:, perm], c_noise, {**cond, "mask": mask[:, perm]})
    torch.testing.assert_close(out_p, out[:, perm], atol=1e-9, rtol=1e-7)

    # positions come out in the zero-centre-of-mass subspace, zero on padding
    com = (out[..., :3] * mask).sum(1) / mask.sum(1)
    assert com.abs().max() < 1e-9
    assert out[1, 5:].abs().max() == 0


def test_float32_tolerance():
    g = torch.Generator().manual_seed(2)
    net = EGNN_PRESETS["XS"](feature_dim=5).eval()
    x = torch.randn(2, 9, 8, generator=g)
    Q = _random_orthogonal(True, g).float()
    out = net(x, torch.zeros(2))
    out_r = net(torch.cat([x[..., :3] @ Q.T + 3.0, x[..., 3:]], -1), torch.zeros(2))
    torch.testing.assert_close(out_r[..., :3], out[..., :3] @ Q.T, atol=1e-4, rtol=1e-4)
