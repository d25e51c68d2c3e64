"""The training loss of the paper: a weighted sum of MSE and soft Dice loss.

Definitions (per batch of reconstructions ``p`` and targets ``t``, both ``(B, 1, rows, columns)`` in
[0, 1]; sums run over all pixels of one image ``i``):

    Dice_i = (2 Σ p·t + ε) / (Σ p + Σ t + ε),   ε = 1 (one pixel's worth of "smoothing")
    soft Dice = mean over the batch of Dice_i
    loss = mse_weight · mean((p − t)²) + dice_weight · (1 − soft Dice)

"Soft" means the prediction is not thresholded (unlike the thresholded Dice *metric* of the authors'
published TF code); grey-level targets (faces) enter with their grey values. ε keeps the Dice of an
all-dark target and an all-dark prediction at 1 instead of 0/0, and is negligible against the ≥ 64²
pixels of a reconstruction. Both terms are computed in float32 whatever the autocast precision.
Early stopping monitors the same soft Dice on the validation pairs (higher is better).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from specklenet.daemon.errors import ConfigError

DICE_SMOOTHING = 1.0


def soft_dice(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image soft Dice coefficient, shape ``(B,)``, in [0, 1] for inputs in [0, 1]."""
    p = prediction.float().flatten(start_dim=1)
    t = target.float().flatten(start_dim=1)
    overlap = (p * t).sum(dim=1)
    return (2 * overlap + DICE_SMOOTHING) / (p.sum(dim=1) + t.sum(dim=1) + DICE_SMOOTHING)


@dataclass(frozen=True)
class ReconstructionLoss:
    """``mse_weight · MSE + dice_weight · (1 − soft Dice)``; both weights >= 0, not both zero."""

    mse_weight: float = 1.0
    dice_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.mse_weight < 0 or self.dice_weight < 0 or self.mse_weight + self.dice_weight == 0:
            raise ConfigError(
                f"loss weights must be >= 0 and not both 0, got {self.mse_weight}, {self.dice_weight}"
            )

    def __call__(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss, averaged over the batch."""
        mse = torch.mean((prediction.float() - target.float()) ** 2)
        return self.mse_weight * mse + self.dice_weight * (1 - soft_dice(prediction, target).mean())
