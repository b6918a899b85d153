"""numpy_nn/attention.py, built in: nn.LayerNorm, nn.GELU(approximate="tanh") and
nn.MultiheadAttention(batch_first=True) hold the same weights under the same names (in_proj_weight packs q, k and v
as one (3d, d) matrix, out_proj the output's), and F.scaled_dot_product_attention runs the heads'
softmax(q k^T / sqrt(d_head)) v as one fused kernel (flash or memory-efficient attention where the hardware has it);
nn.TransformerEncoderLayer(norm_first=True) is numpy_nn's EncoderBlock. Autograd derives what numpy_nn writes as each
layer's backward: the layer norm's three-term dx, the softmax's Jacobian applied in one line, the heads' reshapes,
the residuals' sums. What torch has no module for, the tokens, is below."""
import torch
from torch import nn


class Tokens(nn.Module):
    """numpy_nn.attention.Tokens: patches by reshapes, one nn.Linear for their embedding, the class token and the
    position embeddings as parameters under the same names."""

    def __init__(self, patch, d):
        super().__init__()
        self.patch, self.side = patch, 28 // patch
        self.proj = nn.Linear(patch * patch, d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.side ** 2, d))

    def forward(self, x):
        n, s, p = len(x), self.side, self.patch
        patches = x.reshape(n, s, p, s, p).transpose(2, 3).reshape(n, s * s, p * p)
        embedded = self.proj(patches)
        return torch.cat([self.cls_token.expand(n, -1, -1), embedded], dim=1) + self.pos_embed


class ClassToken(nn.Module):
    """The class token's features: (N, 1 + T, d) -> (N, d)."""

    def forward(self, x):
        return x[:, 0]
