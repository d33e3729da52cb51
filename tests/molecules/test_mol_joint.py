"""The joint model (bonds=true): GraphEGNN is E(3)- and permutation-equivariant with invariant,
symmetric bonds; the noise stays in the zero-CoM subspace with symmetric bond noise; encode and
decode round-trip the graph; fragments keep their bonds; CFG's drop is honoured; a tiny training
run learns; write puts the model's own bonds in the SDF; the positions-only baseline still loads."""

import numpy as np
import pytest
import torch
from rdkit import Chem

from diffsuite.core.generate import generate
from diffsuite.core.precond import DenoisingLoss, EDMPrecond
from diffsuite.core.schedules import LogNormalLaw
from diffsuite.domains.molecules import MoleculesDomain
from diffsuite.domains.molecules.dataset import BOND_CLASSES
from diffsuite.domains.molecules.graph_egnn import GRAPH_EGNN_PRESETS
from diffsuite.domains.molecules.metrics import evaluate_molecules

from .test_mol_equivariance import _random_orthogonal


@pytest.fixture(scope="module")
def joint():
    return MoleculesDomain(preset="XS", network="graph_egnn", bonds=True, vocabulary="qm9_charged", max_molecules=120,
                           pretrained=None)


def _permute(x, perm, A):
    """Permute atoms of a joint tensor: rows, and the partner axis of the bond rows."""
    B, N, _ = x.shape
    bonds = x[..., 3 + A:].reshape(B, N, N, BOND_CLASSES)[:, perm][:, :, perm]
    return torch.cat([x[:, perm, :3 + A], bonds.reshape(B, N, -1)], dim=-1)


@pytest.mark.parametrize("reflect", [False, True])
def test_graph_egnn_equivariance(reflect):
    g = torch.Generator().manual_seed(3)
    A = 8
    net = GRAPH_EGNN_PRESETS["XS"](atom_dim=A, conditioned=True).double().eval()
    for p in net.parameters():
        p.data += 0.05 * torch.randn(p.shape, generator=g, dtype=p.dtype)
    B, N = 3, 7
    mask = torch.ones(B, N, 1, dtype=torch.float64)
    mask[1, 5:] = 0
    x = torch.randn(B, N, 3 + A + N * BOND_CLASSES, generator=g, dtype=torch.float64) * mask
    cond = {"mask": mask, "property": torch.randn(B, generator=g, dtype=torch.float64),
            "drop": torch.tensor([False, True, False])}
    c = torch.randn(B, generator=g, dtype=torch.float64)
    out = net(x, c, cond)
    bonds = out[..., 3 + A:].reshape(B, N, N, BOND_CLASSES)
    assert bonds.abs().max() > 1e-3 and out[..., :3].abs().max() > 1e-3
    torch.testing.assert_close(bonds, bonds.transpose(1, 2))  # symmetric
    assert bonds[1, 5:].abs().max() == 0 and bonds[1, :, 5:].abs().max() == 0  # nothing to padding
    assert bonds.diagonal(dim1=1, dim2=2).abs().max() == 0

    Q = _random_orthogonal(reflect, g)
    t = torch.randn(1, 1, 3, generator=g, dtype=torch.float64)
    out_r = net(torch.cat([(x[..., :3] @ Q.T + t) * mask, x[..., 3:]], -1), c, cond)
    torch.testing.assert_close(out_r[..., :3], out[..., :3] @ Q.T * mask, atol=1e-9, rtol=1e-7)
    torch.testing.assert_close(out_r[..., 3:], out[..., 3:], atol=1e-9, rtol=1e-7)  # types, charges, bonds invariant

    perm = torch.cat([torch.randperm(5, generator=g), torch.arange(5, N)])
    out_p = net(_permute(x, perm, A), c, {**cond, "mask": mask[:, perm]})
    torch.testing.assert_close(out_p, _permute(out, perm, A), atol=1e-9, rtol=1e-7)
    com = (out[..., :3] * mask).sum(1)
    assert com.abs().max() < 1e-9


def test_joint_noise_is_symmetric_and_zero_com(joint):
    b = joint.sampling_batch(4, num_atoms=[5, 9, 3, 9])
    eps = joint.noise_fn(b, torch.Generator().manual_seed(0))(torch.zeros_like(b.x))
    A, N = joint.joint.atom_dim, b.x.shape[1]
    assert (eps[..., :3] * b.mask).sum(1).abs().max() < 1e-5
    e = eps[..., 3 + A:].reshape(4, N, N, BOND_CLASSES)
    assert torch.equal(e, e.transpose(1, 2)) and e.diagonal(dim1=1, dim2=2).abs().max() == 0
    real = e[0, :5, :5][~torch.eye(5, dtype=torch.bool)]
    assert 0.6 < real.std() < 1.5  # unit variance per pair, not sqrt(2)
    assert e[0, 5:].abs().max() == 0 and eps[2, 3:].abs().max() == 0


def test_joint_round_trip_and_loss_weights(joint):
    ds = joint.dataset("train")
    b = joint.collate([ds[i] for i in range(6)])
    mols = joint.decode(b.x, b)
    for i, m in enumerate(mols):
        np.testing.assert_array_equal(m.bonds, ds.bond_matrix(i))
        np.testing.assert_array_equal(m.charges, ds.charges[i, :len(m)])
    r = evaluate_molecules(mols)
    assert r["strict_molecule_stability"] == 1.0 and r["validity"] == 1.0
    # loss weights: zero on padding and self-pairs; per-modality totals in MiDi's ratios
    w = b.mask
    n = len(mols[0])
    A, E = joint.joint.atom_dim, len(joint.vocabulary.elements)
    assert w[0, n:].abs().max() == 0 if n < w.shape[1] else True
    pos, types = w[0, :n, :3].sum(), w[0, :n, 3:3 + E].sum()
    bonds = w[0, :n, 3 + A:].sum()
    torch.testing.assert_close(pos / n, torch.tensor(3.0))
    torch.testing.assert_close(types / n, torch.tensor(0.4 * (0.5 / 0.25) ** 2))
    torch.testing.assert_close(bonds / n, torch.tensor(2.0))


def test_joint_fragment_keeps_atoms_and_bonds(joint):
    den = EDMPrecond(joint.network(), sigma_data=0.5).eval()
    samples, _ = generate(joint, den, 2, steps=3, sampler="euler", fragment="C1=CC=CC=C1O", new_atoms=6)
    b = joint.sampling_batch(1, fragment="C1=CC=CC=C1O", new_atoms=6)
    k = b.meta["fragment_atoms"]
    want = joint.decode(b.known, b)[0]
    assert k == 7 and want.bonds[:k, :k].sum() == 2 * 10  # phenol, Kekule: 3 single + 3 double ring bonds, C-O
    for m in samples:
        assert len(m) == 13 and m.elements[:k] == want.elements[:k]
        np.testing.assert_array_equal(m.bonds[:k, :k], want.bonds[:k, :k])
        np.testing.assert_allclose(m.positions[:k], want.positions[:k], atol=1e-4)


def test_joint_cfg_drop_is_honoured():
    d = MoleculesDomain(preset="XS", network="graph_egnn", bonds=True, vocabulary="qm9_charged", max_molecules=120,
                        condition="alpha", pretrained=None)
    net = d.network().eval()
    for p in net.parameters():
        p.data += 0.05 * torch.randn_like(p)
    b = d.sampling_batch(2, num_atoms=6, target=70.0)
    x = torch.randn_like(b.x) * b.mask
    c1 = dict(b.cond, drop=torch.tensor([True, True]))
    c2 = dict(c1, property=c1["property"] + 3.0)
    torch.testing.assert_close(net(x, torch.zeros(2), c1), net(x, torch.zeros(2), c2))
    assert (net(x, torch.zeros(2), dict(c2, drop=torch.tensor([False, False]))) - net(x, torch.zeros(2), c1)).abs().max() > 1e-4
    samples, _ = generate(d, EDMPrecond(net, 0.5).eval(), 2, steps=2, sampler="euler", num_atoms=7, target=70.0,
                          guidance=2.0)
    assert all(m.properties["target_alpha"] == 70.0 and m.bonds.shape == (7, 7) for m in samples)


def test_joint_training_learns_bonds(joint):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    den = EDMPrecond(joint.network(), sigma_data=0.5)
    loss_fn = DenoisingLoss(LogNormalLaw(), sigma_data=0.5)
    ds = joint.dataset("train")
    b = joint.collate([ds[i] for i in range(12) if len(ds[i]["types"]) <= 12][:6])
    opt = torch.optim.Adam(den.parameters(), lr=5e-3)

    def evaluate():
        with torch.no_grad():
            gen = torch.Generator().manual_seed(5)
            return np.mean([loss_fn(den, b.x, b.cond, b.mask, noise=joint.noise_fn(b, gen), generator=gen).loss.item()
                            for _ in range(4)])

    before = evaluate()
    for _ in range(25):
        out = loss_fn(den, b.x, b.cond, b.mask, noise=joint.noise_fn(b, g), generator=g)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    assert evaluate() < 0.8 * before


def test_write_puts_the_models_own_bonds_in_the_sdf(joint, tmp_path):
    ds = joint.dataset("test")
    b = joint.collate([ds[i] for i in range(3)])
    mols = joint.decode(b.x, b)
    mols[0].positions *= 1.3  # stretched: distance bonds would break, the model's own bonds stay
    sdf, png = joint.write(mols, tmp_path)
    back = [m for m in Chem.SDMolSupplier(str(sdf), removeHs=False, sanitize=False)]
    for m, want in zip(back, mols):
        got = np.zeros((m.GetNumAtoms(),) * 2, int)
        for bd in m.GetBonds():
            got[bd.GetBeginAtomIdx(), bd.GetEndAtomIdx()] = got[bd.GetEndAtomIdx(), bd.GetBeginAtomIdx()] = \
                int(bd.GetBondTypeAsDouble())
        np.testing.assert_array_equal(got, want.bonds)
    r = joint.evaluate(sdf, novelty=False)
    assert r["strict_molecule_stability"] == 1.0 and r["edm_molecule_stability"] < 1.0
    assert png.stat().st_size > 1000


def test_bad_joint_options_are_refused():
    with pytest.raises(ValueError, match="graph_egnn"):
        MoleculesDomain(bonds=True)
    with pytest.raises(ValueError, match="qm9_charged"):
        MoleculesDomain(network="graph_egnn", bonds=True)
    with pytest.raises(ValueError, match="egnn or tensor_product"):
        MoleculesDomain(network="graph_egnn", vocabulary="qm9_charged")


def test_positions_only_baseline_still_loads_and_samples():
    from diffsuite.core.training.export import build_from_export

    d = MoleculesDomain()
    assert d.pretrained is not None and not d.bonds
    domain, den, _ = build_from_export(d.pretrained, "cpu", expect_domain="molecules")
    samples, _ = generate(domain, den, 2, steps=2, sampler="euler", num_atoms=9)
    assert all(len(m) == 9 and m.bonds is None for m in samples)
