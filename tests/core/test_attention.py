"""core.nn.attention: the matmul path taken on a CPU in bf16 for short sequences computes the same
attention (values and gradients) as torch's fused kernel, with and without a key-padding mask."""

import pytest
import torch
import torch.nn.functional as F

from diffsuite.core.nn import Attention, dot_product_attention
from diffsuite.core.nn.attention import CPU_MATMUL_ATTENTION_MAX_TOKENS


def _qkv(L: int, dtype: torch.dtype, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(3, 2, L, 16, generator=g).to(dtype).requires_grad_() for _ in range(3)]


@pytest.mark.parametrize("L", [7, CPU_MATMUL_ATTENTION_MAX_TOKENS, CPU_MATMUL_ATTENTION_MAX_TOKENS + 8])
@pytest.mark.parametrize("masked", [False, True])
def test_attention_matches_the_fused_kernel_in_value_and_gradient(L, masked):
    mask = None
    if masked:  # key padding: the last third of the keys of the first item are padding
        mask = torch.ones(3, 1, 1, L, dtype=torch.bool)
        mask[0, ..., L - L // 3:] = False
    q, k, v = _qkv(L, torch.bfloat16)
    y = dot_product_attention(q, k, v, mask)
    y.float().square().sum().backward()
    got = [y.float(), q.grad.float(), k.grad.float(), v.grad.float()]
    q32, k32, v32 = (t.detach().float().requires_grad_() for t in (q, k, v))
    ref = F.scaled_dot_product_attention(q32, k32, v32, attn_mask=mask)
    ref.square().sum().backward()
    for a, b, name in zip(got, [ref, q32.grad, k32.grad, v32.grad], ("output", "dq", "dk", "dv")):
        err = (a - b).abs().max() / b.abs().max()
        assert err < 0.03, f"{name} at L={L}: relative error {err:.3g}"


def test_float32_and_float64_take_the_fused_kernel_unchanged():
    # float32/float64 always take torch's kernel: the same numbers as calling it directly
    q, k, v = (t.detach().double() for t in _qkv(9, torch.float64))
    assert torch.equal(dot_product_attention(q, k, v), F.scaled_dot_product_attention(q, k, v))


def test_attention_module_under_cpu_autocast_matches_float32():
    torch.manual_seed(0)
    m = Attention(32, heads=4)
    x = torch.randn(2, 20, 32)
    ref = m(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = m(x)
    assert low.dtype == torch.bfloat16
    assert (low.float() - ref).abs().max() < 0.05 * ref.abs().max()


def test_float16_keeps_the_fused_kernel():
    q, k, v = (t.detach() for t in _qkv(9, torch.float16))
    assert torch.equal(dot_product_attention(q, k, v), F.scaled_dot_product_attention(q, k, v))
