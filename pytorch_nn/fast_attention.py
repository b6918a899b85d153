"""numpy_nn/fast_attention.py, built in: nn.MultiheadAttention projects q, k and v with one matrix product over all
tokens and splits the heads by views, and F.scaled_dot_product_attention runs softmax(q k^T / sqrt(d_head)) v as one
fused kernel (flash or memory-efficient attention on a GPU), forward and backward. pytorch_nn's
nn.TransformerEncoderLayer calls them; nothing is left to write by hand."""
