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


def class_attention(model, x):
    """numpy_nn.attention.class_attention: nn.TransformerEncoderLayer asks its attention for no weights (the fused
    kernels never form them), so a hook catches the last block's input and its nn.MultiheadAttention runs again on
    the normed input with need_weights=True, average_attn_weights=False: (N, heads, patches)."""
    last = [m for m in model.modules() if isinstance(m, nn.TransformerEncoderLayer)][-1]
    seen = {}
    hook = last.register_forward_pre_hook(lambda module, inputs: seen.update(x=inputs[0]))
    try:
        with torch.no_grad():
            model.eval()
            model(x)
            h = last.norm1(seen["x"])
            A = last.self_attn(h, h, h, need_weights=True, average_attn_weights=False)[1]
    finally:
        hook.remove()
    return A[:, :, 0, 1:]
