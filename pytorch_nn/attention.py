"""numpy_nn/attention.py, built in: nn.LayerNorm, nn.GELU(approximate="tanh") and
nn.MultiheadAttention(batch_first=True) hold the same weights under the same names (in_proj_weight packs q, k and v
as one (3d, d) matrix, out_proj the output's), and F.scaled_dot_product_attention runs the heads'
softmax(q k^T / sqrt(d_head)) v as one fused kernel (flash or memory-efficient attention where the hardware has it).
Autograd derives what numpy_nn writes as each layer's backward: the layer norm's three-term dx, the softmax's
Jacobian applied in one line, the heads' reshapes."""
