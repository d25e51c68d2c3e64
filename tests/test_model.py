"""The U-Net: shapes, value range, named parts, configuration errors and seeded initial weights."""

from __future__ import annotations

import pytest
import torch

from specklenet.daemon.errors import ConfigError
from specklenet.training.model import ConvBlock, UNet, UNetConfig, build_model, count_parameters

SMALL = UNetConfig(depth=2, base_width=4, kernel_size=7, frame_px=256, resolution_px=32)


def test_output_is_the_working_resolution_in_unit_range() -> None:
    model = build_model(SMALL).eval()
    frames = torch.rand(3, 1, 256, 256) * 5
    with torch.no_grad():
        out = model(frames)
    assert out.shape == (3, 1, 32, 32)
    assert out.min() >= 0
    assert out.max() <= 1


def test_full_resolution_keeps_the_size() -> None:
    model = build_model(UNetConfig(depth=3, base_width=2, frame_px=64, resolution_px=64)).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 1, 64, 64)).shape == (1, 1, 64, 64)


def test_every_convolution_uses_the_configured_kernel() -> None:
    model = UNet(UNetConfig(depth=3, base_width=2, kernel_size=5, resolution_px=64))
    blocks = [m for m in model.modules() if isinstance(m, ConvBlock)]
    assert len(blocks) == 1 + 2 * 3  # input block, one per level down, one per level up
    kernels = {conv.kernel_size for block in blocks for conv in block if isinstance(conv, torch.nn.Conv2d)}
    assert kernels == {(5, 5)}
    with torch.no_grad():
        assert model.eval()(torch.rand(1, 1, 256, 256)).shape == (1, 1, 64, 64)  # 'same' padding


def test_channels_double_per_level() -> None:
    model = UNet(UNetConfig(depth=3, base_width=4, resolution_px=64))
    widths = [down[1][0].out_channels for down in model.downs]
    assert widths == [8, 16, 32]


def test_paper_network_size_matches_the_published_count() -> None:
    # performance-reliability.md A.1 counts 39.1 M parameters for this 7×7, base-32, depth-4 U-Net.
    assert count_parameters(UNet(UNetConfig())) == pytest.approx(39.1e6, rel=2e-3)


def test_same_seed_same_weights_other_seed_other_weights() -> None:
    a, b, c = build_model(SMALL, seed=0), build_model(SMALL, seed=0), build_model(SMALL, seed=1)
    for (name, pa), pb, _pc in zip(
        a.state_dict().items(), b.state_dict().values(), c.state_dict().values(), strict=False
    ):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.inc[0].weight, c.inc[0].weight)


def test_building_a_model_leaves_the_global_random_stream_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_model(SMALL, seed=7)
    torch.testing.assert_close(torch.rand(3), expected)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"kernel_size": 4}, "kernel_size"),
        ({"resolution_px": 48}, "divide"),  # 48 does not divide 256
        ({"depth": 6, "resolution_px": 32}, "multiple of 2"),
        ({"depth": 0}, "depth"),
    ],
)
def test_bad_shapes_are_config_errors(changes: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        UNetConfig(**changes)
