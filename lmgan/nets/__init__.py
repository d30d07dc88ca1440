"""The networks: R (motion.py), G with the prediction layer (generator.py, prediction.py), the
critics (critics.py), and R + G as one module (model.py)."""

from torch import nn


def normal_init(module: nn.Module) -> None:
    """Conv/Linear weights N(0, 0.02), biases 0 (DESIGN.md §4), for G and both critics."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
