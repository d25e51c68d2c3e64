"""The U-Net of the paper (Zhang et al., its Ref. 17), with 7×7 kernels, built from small named parts.

Encoder–decoder with skip connections: ``depth`` max-pool halvings, each level two k×k convolutions with
batch normalisation and ReLU, channels ``base_width × 2**level``; transposed 2×2 convolutions up,
concatenation with the encoder's features at the same level, and a 1×1 head with a sigmoid, so the
output is a reconstruction in [0, 1].

The network takes normalised speckle frames ``frames[index, 1, row, column]`` of ``frame_px``² (the
camera's 256×256 binned region of interest) and first area-averages them to its working resolution
``resolution_px``² (:class:`SpeckleStem`), which is also the output resolution. Keeping that
down-sampling inside the network means the exported ONNX file takes the camera's frames as they come
and the daemon never has to know how a profile resized them.

The same :class:`UNetConfig` and seed always give the same initial weights (:func:`build_model`), as
the paper requires for comparing cases. Modules are not thread-safe (as usual for torch modules).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from specklenet.daemon.errors import ConfigError


@dataclass(frozen=True)
class UNetConfig:
    """Shape of the network.

    Attributes:
        depth: number of 2× down-samplings (the paper's U-Net: 4).
        base_width: channels of the first level; doubled at every level down.
        kernel_size: side of the square convolution kernels, odd (the paper: 7 instead of U-Net's 3).
        frame_px: side of the speckle frames the network receives (the camera's 256).
        resolution_px: working and output resolution; divides ``frame_px`` and is a multiple of
            ``2**depth``.
    """

    depth: int = 4
    base_width: int = 32
    kernel_size: int = 7
    frame_px: int = 256
    resolution_px: int = 256

    def __post_init__(self) -> None:
        if self.depth < 1 or self.base_width < 1:
            raise ConfigError(
                f"model: depth and base_width must be >= 1, got {self.depth}, {self.base_width}"
            )
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(f"model.kernel_size: must be odd and >= 1, got {self.kernel_size}")
        if self.resolution_px < 1 or self.frame_px % self.resolution_px:
            raise ConfigError(
                f"model.resolution_px ({self.resolution_px}) must divide frame_px ({self.frame_px})"
            )
        if self.resolution_px % 2**self.depth:
            raise ConfigError(
                f"model.resolution_px ({self.resolution_px}) must be a multiple of 2**depth ({2**self.depth})"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class ConvBlock(nn.Sequential):
    """(k×k convolution → batch norm → ReLU) × 2; 'same' padding keeps the size."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        padding = kernel_size // 2
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size, padding=padding, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class Down(nn.Sequential):
    """2×2 max-pool → :class:`ConvBlock` (halves the size)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__(nn.MaxPool2d(2), ConvBlock(in_channels, out_channels, kernel_size))


class Up(nn.Module):
    """2×2 transposed convolution (doubles the size) → concatenate the skip → :class:`ConvBlock`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        self.conv = ConvBlock(2 * out_channels, out_channels, kernel_size)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class SpeckleStem(nn.Module):
    """Area-average frames by an integer factor to the working resolution (identity for factor 1)."""

    def __init__(self, factor: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(factor) if factor > 1 else nn.Identity()

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.pool(frames)


class UNet(nn.Module):
    """Frames (B, 1, frame_px, frame_px) → reconstruction (B, 1, resolution_px, resolution_px) in [0, 1]."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        k, widths = config.kernel_size, [config.base_width * 2**level for level in range(config.depth + 1)]
        self.stem = SpeckleStem(config.frame_px // config.resolution_px)
        self.inc = ConvBlock(1, widths[0], k)
        self.downs = nn.ModuleList(Down(widths[i], widths[i + 1], k) for i in range(config.depth))
        self.ups = nn.ModuleList(Up(widths[i + 1], widths[i], k) for i in reversed(range(config.depth)))
        self.head = nn.Conv2d(widths[0], 1, kernel_size=1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.inc(self.stem(frames))
        skips = [x]
        for down in self.downs:
            x = down(x)
            skips.append(x)
        skips.pop()  # the bottleneck's output is x itself
        for up in self.ups:
            x = up(x, skips.pop())
        return torch.sigmoid(self.head(x))


def build_model(config: UNetConfig, *, seed: int = 0) -> UNet:
    """A U-Net with initial weights fixed by ``seed`` (same config and seed → identical weights).

    The global RNG state is saved and restored, so building a model does not perturb the caller's
    random stream.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet(config)


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())
