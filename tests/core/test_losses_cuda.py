"""Every loss gives the same value and gradient on CUDA as on the CPU, and never makes the host wait for
the GPU (runs only where CUDA is present).

    python -m pytest tests/core/test_losses_cuda.py      # on a machine with an NVIDIA GPU
"""

from __future__ import annotations

import pytest
import torch

from core.losses import build_loss
from core.similarity import build_similarity

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

CLASSES = [f"c{i}" for i in range(6)]
HIERARCHY = {"c0": "a", "c1": "a", "c2": "b", "c3": "b", "c4": "r", "c5": "r", "a": "r", "b": "r"}
SPECS = [
    ({"kind": "cross_entropy", "label_smoothing": 0.1}, None),
    ({"kind": "simloss"}, {"kind": "ordinal", "reduction_factor": 0.5}),
    ({"kind": "soft_labels", "temperature": 0.5}, {"kind": "ordinal"}),
    ({"kind": "soft_labels", "divergence": "kl"}, {"kind": "ordinal"}),
    ({"kind": "expected_value"}, {"kind": "ordinal", "cyclic": True}),
    ({"kind": "expected_cost"}, {"kind": "ordinal"}),
    ({"kind": "pairwise"}, {"kind": "ordinal"}),
    ({"kind": "partial_credit"}, {"kind": "ordinal"}),
    ({"kind": "hierarchical_xe", "alpha": 0.5}, {"kind": "hierarchy", "parents": HIERARCHY}),
    ({"kind": "emd"}, {"kind": "ordinal"}),
    ({"kind": "soft_labels", "normalise": "softmax", "temperature": 0.5}, {"kind": "ordinal"}),
    (
        {"kind": "hierarchical_xe", "alpha": 0.5, "weighting": "mbm_code"},
        {"kind": "hierarchy", "parents": HIERARCHY},
    ),
    ({"kind": "cdw_ce", "alpha": 1.0}, {"kind": "ordinal"}),
    ({"kind": "weighted_kappa"}, {"kind": "ordinal"}),
    ({"kind": "weighted_kappa", "weighting": "linear"}, None),
    (
        {"kind": "slace", "alpha": 0.5},
        {"kind": "ordinal", "values": {f"c{i}": v for i, v in enumerate([3, 1, 4, 10, 5, 9])}},
    ),
    *[({"kind": "unimodal_soft_labels", "family": f}, None) for f in ("beta", "binomial", "poisson")],
    ({"kind": "unimodal_soft_labels", "family": "exponential", "p": 1.5, "eta": 0.7}, {"kind": "ordinal"}),
    ({"kind": "unimodal_soft_labels", "family": "triangular", "alpha2": 0.1}, None),
    ({"kind": "focal", "gamma": 2.0}, None),
    ({"kind": "focal", "gamma": 0.5, "alpha": {f"c{i}": 0.1 * (i + 1) for i in range(6)}}, None),
    (
        {
            "kind": "combined",
            "components": [
                {"weight": 0.7, "loss": {"kind": "cross_entropy"}},
                {"weight": 0.3, "loss": {"kind": "expected_value"}},
            ],
        },
        {"kind": "ordinal"},
    ),
]

IDS = [f"{k}-{s[0]['kind']}" for k, s in enumerate(SPECS)]


@pytest.mark.parametrize("loss_spec, sim_spec", SPECS, ids=IDS)
def test_cuda_matches_cpu(loss_spec, sim_spec):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(64, len(CLASSES), generator=gen, dtype=torch.float32) * 3
    logits[0, 0] = 1e4  # an extreme row: still finite on the GPU
    targets = torch.randint(0, len(CLASSES), (64,), generator=gen)
    similarity = build_similarity(sim_spec, CLASSES) if sim_spec else None
    loss = build_loss(loss_spec, similarity, CLASSES, similarity_spec=sim_spec)

    cpu_logits = logits.clone().requires_grad_(True)
    cpu_value = loss(cpu_logits, targets)
    cpu_value.backward()

    gpu_loss = loss.to("cuda")
    gpu_logits = logits.to("cuda").requires_grad_(True)
    gpu_value = gpu_loss(gpu_logits, targets.to("cuda"))
    gpu_value.backward()

    assert torch.isfinite(gpu_value) and torch.isfinite(gpu_logits.grad).all()
    torch.testing.assert_close(gpu_value.cpu(), cpu_value.detach(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gpu_logits.grad.cpu(), cpu_logits.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("loss_spec, sim_spec", SPECS, ids=IDS)
def test_no_host_synchronisation(loss_spec, sim_spec):
    """A training step must not wait for the GPU: forward and backward queue work and return."""
    similarity = build_similarity(sim_spec, CLASSES) if sim_spec else None
    loss = build_loss(loss_spec, similarity, CLASSES, similarity_spec=sim_spec).to("cuda")
    logits = torch.randn(64, len(CLASSES), device="cuda", requires_grad=True)
    targets = torch.randint(0, len(CLASSES), (64,), device="cuda")
    loss(logits, targets).backward()  # warm-up: lazy initialisation may synchronise once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss(logits, targets).backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
