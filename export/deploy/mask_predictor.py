"""torchvision's ``MaskRCNNPredictor`` computed at the RoI's own resolution, the label's map shuffled up.

The predictor is ``ConvTranspose2d(C, D, 2, stride 2) -> ReLU -> Conv2d(D, K, 1)`` on each
detection's 14x14 features. A 2x2 stride-2 transposed convolution without padding is a 1x1
convolution to ``4 * D`` channels whose channel ``s * D + d`` is output pixel
``(2h + i, 2w + j)``, ``s = 2i + j``, of channel ``d``; ReLU is elementwise and the 1x1 logits
convolution acts on each pixel alone, so both commute with that shuffle: the logits become a
4-group 1x1 convolution at 14x14 and only the detection's own label's four maps are shuffled to
28x28 (``DepthToSpace``). Same numbers (up to float summation order), same FLOPs, and two things
an INT8 CPU graph needs: onnxruntime has an int8 kernel for the 1x1 convolution but none for
``ConvTranspose``, and the shuffle moves 4 channels per detection instead of 256.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def is_standard_predictor(predictor: nn.Module) -> bool:
    """torchvision's predictor layout (``conv5_mask`` 2x2 stride-2, ``mask_fcn_logits`` 1x1), unchanged."""
    up = getattr(predictor, "conv5_mask", None)
    logits = getattr(predictor, "mask_fcn_logits", None)
    children = list(predictor.children())
    return (
        isinstance(up, nn.ConvTranspose2d)
        and isinstance(logits, nn.Conv2d)
        and len(children) == 3
        and children[0] is up
        and isinstance(children[1], nn.ReLU)
        and children[2] is logits
        and up.kernel_size == (2, 2)
        and up.stride == (2, 2)
        and up.padding == (0, 0)
        and up.output_padding == (0, 0)
        and up.dilation == (1, 1)
        and up.groups == 1
        and logits.kernel_size == (1, 1)
        and logits.stride == (1, 1)
        and logits.padding == (0, 0)
        and logits.groups == 1
    )


class ShuffledMaskPredictor(nn.Module):
    """``(features [R, C, S, S], labels [R]) -> [R, 1, 2S, 2S]`` logits of each detection's label."""

    def __init__(self, predictor: nn.Module) -> None:
        super().__init__()
        up: nn.ConvTranspose2d = predictor.conv5_mask
        logits: nn.Conv2d = predictor.mask_fcn_logits
        channels, reduced = up.weight.shape[:2]
        self.num_classes = int(logits.out_channels)
        self.expand = nn.Conv2d(channels, 4 * reduced, 1, bias=up.bias is not None)
        with torch.no_grad():
            # [C, D, 2, 2] -> [(i, j, d), C]: channel s * D + d with s = 2i + j
            self.expand.weight.copy_(up.weight.permute(2, 3, 1, 0).reshape(4 * reduced, channels, 1, 1))
            if up.bias is not None:
                self.expand.bias.copy_(up.bias.repeat(4))
        self.logits = nn.Conv2d(4 * reduced, 4 * self.num_classes, 1, groups=4, bias=logits.bias is not None)
        with torch.no_grad():
            self.logits.weight.copy_(logits.weight.repeat(4, 1, 1, 1))  # group s: channel s * K + k
            if logits.bias is not None:
                self.logits.bias.copy_(logits.bias.repeat(4))

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        z = self.logits(F.relu(self.expand(x)))  # [R, 4K, S, S]
        offsets = torch.arange(4, device=labels.device) * self.num_classes
        index = (labels.reshape(-1, 1) + offsets).reshape(-1, 4, 1, 1).expand(-1, 4, z.shape[-2], z.shape[-1])
        # the label's maps at the four sub-pixel positions; with one channel CRD order is s = 2i + j
        return F.pixel_shuffle(torch.gather(z, 1, index), 2)
