import pytest
import torch

from diffsuite.core.precond import DenoisingLoss, EDMPrecond
from diffsuite.core.schedules import LogNormalLaw
from diffsuite.domains.audio.unet import PRESETS, SpectrogramUNet


def test_shapes_any_length_multiple_of_stride():
    net = PRESETS["XS"](10, 64)
    for T in (net.time_stride, 64, 96):
        x = torch.randn(2, 1, 64, T)
        assert net(x, torch.zeros(2), {"class": torch.tensor([0, 9])}).shape == x.shape
    with pytest.raises(ValueError, match="multiples of the U-Net stride"):
        net(torch.randn(1, 1, 64, 63), torch.zeros(1), None)
    with pytest.raises(ValueError, match="64 mel bins, got 32"):
        net(torch.randn(1, 1, 32, 64), torch.zeros(1), None)


@pytest.mark.parametrize("layout", ["1d", "2d"])
def test_drop_means_null_class_and_class_changes_output(layout):
    torch.manual_seed(0)
    net = SpectrogramUNet(num_classes=4, n_mels=16, layout=layout, channels=16, mults=(1, 2), attention=True)
    for p in net.parameters():  # leave the zero init: the output must depend on the condition
        torch.nn.init.normal_(p, std=0.05)
    x, c = torch.randn(2, 1, 16, 8), torch.zeros(2)
    y3 = net(x, c, {"class": torch.tensor([3, 3])})
    dropped = net(x, c, {"class": torch.tensor([3, 3]), "drop": torch.tensor([True, False])})
    null = net(x, c, {"class": torch.tensor([-1, -1])})
    assert torch.allclose(dropped[0], null[0]) and torch.allclose(dropped[1], y3[1])
    assert not torch.allclose(y3, null)
    assert torch.allclose(net(x, c, None), null)
    with pytest.raises(ValueError, match="class 4 is outside"):
        net(x, c, {"class": torch.tensor([4, 0])})


def test_loss_falls_on_a_fixed_batch(tiny_domain):
    torch.manual_seed(0)
    ds = tiny_domain.dataset("train")
    batch = tiny_domain.collate([ds[i] for i in range(10)])
    model = EDMPrecond(tiny_domain.network(), sigma_data=0.5)
    loss = DenoisingLoss(LogNormalLaw(), sigma_data=0.5)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)

    def value():
        g.manual_seed(1)
        with torch.no_grad():
            return sum(loss(model, batch.x, batch.cond, batch.mask, generator=g).loss.item() for _ in range(4))

    before = value()
    for _ in range(40):
        out = loss(model, batch.x, batch.cond, batch.mask, generator=g)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    assert value() < 0.8 * before
