"""Soft Dice and the weighted MSE + Dice loss against closed-form cases."""

from __future__ import annotations

import pytest
import torch

from specklenet.daemon.errors import ConfigError
from specklenet.training.losses import DICE_SMOOTHING, ReconstructionLoss, soft_dice


def _masks() -> tuple[torch.Tensor, torch.Tensor]:
    a, b = torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 16)
    a[..., :8, :] = 1.0
    b[..., 8:, :] = 1.0
    return a, b


def test_dice_of_identical_masks_is_one_and_of_disjoint_masks_nearly_zero() -> None:
    a, b = _masks()
    assert soft_dice(a, a).item() == pytest.approx(1.0)
    # disjoint: only the smoothing term remains, ε / (|a| + |b| + ε)
    assert soft_dice(a, b).item() == pytest.approx(DICE_SMOOTHING / (128 + 128 + DICE_SMOOTHING))


def test_dice_of_two_empty_images_is_one() -> None:
    empty = torch.zeros(2, 1, 8, 8)
    torch.testing.assert_close(soft_dice(empty, empty), torch.ones(2))


def test_dice_is_per_image() -> None:
    a, b = _masks()
    dice = soft_dice(torch.cat([a, a]), torch.cat([a, b]))
    assert dice.shape == (2,)
    assert dice[0] > 0.99 > 0.01 > dice[1]


def test_loss_combines_mse_and_dice_with_weights() -> None:
    prediction, target = torch.full((1, 1, 4, 4), 0.5), torch.ones(1, 1, 4, 4)
    mse = 0.25
    dice = (2 * 8 + DICE_SMOOTHING) / (8 + 16 + DICE_SMOOTHING)
    assert ReconstructionLoss(1.0, 0.0)(prediction, target).item() == pytest.approx(mse)
    assert ReconstructionLoss(0.0, 1.0)(prediction, target).item() == pytest.approx(1 - dice)
    assert ReconstructionLoss(2.0, 3.0)(prediction, target).item() == pytest.approx(2 * mse + 3 * (1 - dice))


def test_perfect_reconstruction_has_zero_loss() -> None:
    a, _ = _masks()
    assert ReconstructionLoss()(a, a).item() == pytest.approx(0.0, abs=1e-7)


def test_loss_is_float32_under_bf16_inputs() -> None:
    a, b = _masks()
    assert ReconstructionLoss()(a.bfloat16(), b.bfloat16()).dtype == torch.float32
    assert soft_dice(a.bfloat16(), b.bfloat16()).dtype == torch.float32
    # sums are taken in float32: a bf16 sum of 10,000 pixels would round to bf16's 8-bit mantissa
    grey = torch.full((1, 1, 100, 100), 0.3).bfloat16()
    half = torch.zeros(1, 1, 100, 100)
    half[..., :50] = 1.0
    assert soft_dice(grey, half).item() == pytest.approx(soft_dice(grey.float(), half).item(), rel=1e-7)


@pytest.mark.parametrize(("mse", "dice"), [(-1.0, 1.0), (0.0, 0.0)])
def test_bad_weights_are_rejected(mse: float, dice: float) -> None:
    with pytest.raises(ConfigError, match="loss weights"):
        ReconstructionLoss(mse, dice)
