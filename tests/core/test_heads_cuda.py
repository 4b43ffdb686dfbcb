"""The ordinal heads on CUDA: the coral / corn losses give the CPU's value and gradient, the per-class
conversion the CPU's log-probabilities, and a coral model trains a step there (runs only where CUDA is
present, like tests/core/test_losses_cuda.py).

    python -m pytest tests/core/test_heads_cuda.py      # on a machine with an NVIDIA GPU
"""

from __future__ import annotations

import pytest
import torch

from core.losses import HEAD_LOSS_KINDS, build_loss
from core.models import build_model
from core.models.heads import class_logits

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

CLASSES = [f"c{i}" for i in range(6)]


def data(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(64, 5, generator=g) * 3, torch.randint(0, 6, (64,), generator=g)


@pytest.mark.parametrize("kind", HEAD_LOSS_KINDS)
def test_loss_value_and_gradient_match_the_cpu(kind):
    z, y = data(0)
    loss = build_loss({"kind": kind}, None, CLASSES)
    z_cpu, z_gpu = z.clone().requires_grad_(True), z.cuda().requires_grad_(True)
    cpu, gpu = loss(z_cpu, y), loss.cuda()(z_gpu, y.cuda())
    cpu.backward()
    gpu.backward()
    assert gpu.item() == pytest.approx(cpu.item(), rel=1e-5)
    torch.testing.assert_close(z_gpu.grad.cpu(), z_cpu.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("head", ["coral", "corn"])
def test_class_logits_match_the_cpu(head):
    z, _ = data(1)
    torch.testing.assert_close(
        class_logits(z.cuda(), head).cpu(), class_logits(z, head), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("head", ["coral", "corn"])
def test_a_training_step_on_cuda(head):
    torch.manual_seed(0)
    model = build_model({"kind": "mlp", "hidden": [32], "head": head}, (16,), 6).cuda()
    loss = build_loss({"kind": head}, None, CLASSES).cuda()
    x, y = torch.randn(32, 16, device="cuda"), torch.randint(0, 6, (32,), device="cuda")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, fused=True)
    first = loss(model(x), y)
    first.backward()
    opt.step()
    assert torch.isfinite(first) and loss(model(x), y).item() < first.item()
