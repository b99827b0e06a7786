"""The supervised contrastive loss (Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020)."""

from __future__ import annotations

import torch
import torch.nn.functional as nn_functional


def supervised_contrastive_loss(embeddings: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Return the mean SupCon loss (the paper's L_out, Eq. 2) over anchors that have a positive.

    For L2-normalised embeddings z and anchor i, with P(i) the other samples
    of i's label and A(i) all samples except i::

        L_i = -1/|P(i)| * sum_{p in P(i)} log( exp(z_i.z_p / tau) / sum_{a in A(i)} exp(z_i.z_a / tau) )

    An anchor whose label occurs once in the batch has no positive, so it is
    left out of the mean. If no anchor has a positive, the loss is zero (and
    still differentiable). ``embeddings`` [B, D] are normalised here;
    ``labels`` [B]. Several augmented views of one image are separate rows
    with the same label. Unlike the reference code, there is no extra
    ``temperature / base_temperature`` factor.
    """
    embeddings = nn_functional.normalize(embeddings, dim=1)
    batch = embeddings.shape[0]
    logits = embeddings @ embeddings.T / temperature
    self_mask = torch.eye(batch, dtype=torch.bool, device=embeddings.device)

    # log of the softmax over A(i): every sample except the anchor itself.
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)

    # Average over the positives P(i), then over anchors with at least one positive.
    positive = (labels[:, None] == labels[None, :]) & ~self_mask
    positive_count = positive.sum(dim=1)
    has_positive = positive_count > 0
    positive_sum = log_prob.masked_fill(~positive, 0.0).sum(dim=1)
    if not has_positive.any():
        return embeddings.sum() * 0.0
    per_anchor = -positive_sum[has_positive] / positive_count[has_positive]
    return per_anchor.mean()
