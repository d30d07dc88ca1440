"""The networks: R (motion.py), G with the prediction layer (generator.py, prediction.py), the
critics (critics.py), and R + G as one module (model.py)."""

from torch import nn


def normal_init(module: nn.Module) -> None:
    """Conv/Linear weights N(0, 0.02), biases 0 (docs/model.md), for G and both critics."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def channels_at(r: int, channel_base: int, max_channels: int) -> int:
    """Channels of a layer at resolution r×r: min(max_channels, channel_base // r), the authors'
    rule for G, its prediction layer and both critics (4096: 16 at 256², 32 at 128², 512 by 8²)."""
    return min(max_channels, channel_base // r)
