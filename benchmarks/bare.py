"""Bare training loops: the twins' math written inline, with no layer objects, trainer or loop helper.
They are the floor the frameworks' abstractions are measured against (benchmarks/epoch_bench.py).
Each takes (data, args) and returns epoch(e), one pass over data.x_train in the (seed, e) order."""
import numpy as np
import torch

import data_loader
import numpy_nn.model
import pytorch_nn.model


def numpy_update(params, grads, args):
    """SGD with momentum 0.9, or Adam, per tensor, in place: the update written as a bare loop would."""
    state = [np.zeros_like(p) for p in params]
    state2 = [np.zeros_like(p) for p in params]
    t = [0]

    def update():
        if args.optimizer == "sgd":
            for p, g, buf in zip(params, grads, state):
                buf *= 0.9
                buf += g
                p -= args.lr * buf
            return
        t[0] += 1
        c1, c2 = 1 - 0.9 ** t[0], (1 - 0.999 ** t[0]) ** 0.5
        for p, g, m, v in zip(params, grads, state, state2):
            m += 0.1 * (g - m)
            v *= 0.999
            v += 0.001 * g * g
            p -= (args.lr / c1) * (m / (np.sqrt(v) / c2 + 1e-8))
    return update


def softmax_grad(z, y):
    """The gradient of the mean cross-entropy with respect to the logits z, in place: (softmax - onehot) / N."""
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    z[np.arange(len(y)), y] -= 1
    z /= len(y)
    return z


def numpy_mlp(data, args):
    """784-128-64-10 ReLU MLP, softmax cross-entropy, backprop and the update, inline."""
    p = numpy_nn.model.build(args).params
    W1, b1, W2, b2, W3, b3 = (p[k].copy() for k in ("fc1.W", "fc1.b", "fc2.W", "fc2.b", "fc3.W", "fc3.b"))
    params, grads = [W1, b1, W2, b2, W3, b3], [None] * 6
    update = numpy_update(params, grads, args)

    def epoch(e):
        for x, y in data_loader.batches(data.x_train, data.y_train, args.batch_size, args.seed, e):
            h1 = x @ W1 + b1
            np.maximum(h1, 0, out=h1)
            h2 = h1 @ W2 + b2
            np.maximum(h2, 0, out=h2)
            z = softmax_grad(h2 @ W3 + b3, y)
            dh2 = z @ W3.T
            dh2 *= h2 > 0
            dh1 = dh2 @ W2.T
            dh1 *= h1 > 0
            grads[:] = [x.T @ dh1, dh1.sum(0), h1.T @ dh2, dh2.sum(0), h2.T @ z, z.sum(0)]
            update()
    epoch.params = params  # for the test that the bare loop computes what numpy_nn computes
    return epoch


def numpy_fits(args) -> bool:
    """Whether the bare NumPy loops write this network: any MLP; a CNN of the cnn preset's shape (batch norm
    everywhere, one hidden layer, one kernel size, "same" padding); no recurrent network."""
    return args.model == "mlp" or (args.model == "cnn" and args.batch_norm == "all" and len(args.hidden) == 1
                                   and len(set(args.kernel_size)) == 1 and args.padding == "same")


def numpy_cnn(data, args):
    """The CNN (conv k x k 'same', batch norm, 2x2 max pool, ReLU per block; flatten; dense with batch norm;
    no biases before batch norm) as bare functions on channels-last arrays: im2col by stride tricks and one
    product per convolution, col2im one product per kernel offset, pooling by a 2x2 reshape, batch-norm
    sums by BLAS."""
    assert numpy_fits(args), "the bare CNN is the cnn preset's shape"
    p, k = numpy_nn.model.build(args).params, args.kernel_size[0]
    convs = [p[f"conv{i}.W"].transpose(0, 2, 3, 1).reshape(len(p[f"conv{i}.W"]), -1).copy()
             for i in range(1, len(args.channels) + 1)]  # (C_out, k*k*C_in), channels-last patch order
    norms = [(p[f"conv{i}_bn.gamma"].copy(), p[f"conv{i}_bn.beta"].copy()) for i in range(1, len(convs) + 1)]
    W1, g1, be1, W2, b2 = (p[n].copy() for n in ("fc1.W", "fc1_bn.gamma", "fc1_bn.beta", "fc2.W", "fc2.b"))
    params = [W for W in convs] + [a for pair in norms for a in pair] + [W1, g1, be1, W2, b2]
    grads = [None] * len(params)
    update = numpy_update(params, grads, args)
    pad = k // 2

    def bn_forward(rows, gamma, beta):
        ones = np.ones(len(rows), rows.dtype)
        centered = rows - (ones @ rows) / len(rows)
        inv_std = 1 / np.sqrt(np.einsum("ij,ij->j", centered, centered) / len(rows) + 1e-5)
        return centered * (gamma * inv_std) + beta, (centered, inv_std, gamma, ones)

    def bn_backward(d, cache):
        centered, inv_std, gamma, ones = cache
        dgamma, dbeta = np.einsum("ij,ij->j", d, centered) * inv_std, ones @ d
        scale = gamma * inv_std
        return d * scale - centered * (scale * inv_std * dgamma / len(d)) - scale * dbeta / len(d), dgamma, dbeta

    def epoch(e):
        for x, y in data_loader.batches(data.x_train, data.y_train, args.batch_size, args.seed, e):
            n, caches, a = len(y), [], x.reshape(len(x), 28, 28, 1)  # (N, H, W, C); C=1: the same memory
            for W, (gamma, beta) in zip(convs, norms):
                h, c = a.shape[1], a.shape[3]
                padded = np.zeros((n, h + 2 * pad, h + 2 * pad, c), a.dtype)
                padded[:, pad:pad + h, pad:pad + h] = a
                s = padded.strides
                cols = np.lib.stride_tricks.as_strided(padded, (n, h, h, k, k, c), (s[0], s[1], s[2], s[1], s[2], s[3]))
                cols = cols.reshape(n * h * h, -1)                                  # im2col, one copy
                z, bn = bn_forward(cols @ W.T, gamma, beta)
                e = h - h % 2                                               # pooling floors an odd side
                z4 = z.reshape(n, h, h, len(W))[:, :e, :e]
                left, right = z4[:, :, 0::2], z4[:, :, 1::2]            # 2x2 max pool, separably: columns,
                col_win, m = right > left, np.maximum(left, right)
                top, bottom = m[:, 0::2], m[:, 1::2]                     # then rows; ties keep the first
                row_win, a = bottom > top, np.maximum(top, bottom)
                np.maximum(a, 0, out=a)                                     # ReLU after pooling: same numbers
                caches.append((padded.shape, cols, bn, a, col_win, row_win))
            flat = a.transpose(0, 3, 1, 2).reshape(n, -1)                          # torch's (C, H, W) order
            hidden, bn1 = bn_forward(flat @ W1, g1, be1)
            np.maximum(hidden, 0, out=hidden)
            z = softmax_grad(hidden @ W2 + b2, y)
            dW2, db2 = hidden.T @ z, z.sum(0)
            dhidden, dg1, dbe1 = bn_backward((z @ W2.T) * (hidden > 0), bn1)
            dW1 = flat.T @ dhidden
            d = (dhidden @ W1.T).reshape(n, a.shape[3], a.shape[1], a.shape[2]).transpose(0, 2, 3, 1)
            conv_grads, norm_grads = [], []
            for i in reversed(range(len(convs))):
                padded_shape, cols, bn, a, col_win, row_win = caches[i]
                d = d * (a > 0)
                c_out, h = convs[i].shape[0], padded_shape[1] - 2 * pad
                dm = np.empty(col_win.shape, d.dtype)
                np.multiply(d, ~row_win, out=dm[:, 0::2])
                np.multiply(d, row_win, out=dm[:, 1::2])
                dz = (np.zeros if h % 2 else np.empty)((n, h, h, c_out), d.dtype)
                e = h - h % 2
                np.multiply(dm, ~col_win, out=dz[:, :e, 0:e:2])
                np.multiply(dm, col_win, out=dz[:, :e, 1:e:2])
                dz, dgamma, dbeta = bn_backward(dz.reshape(-1, c_out), bn)
                conv_grads.insert(0, dz.T @ cols)
                norm_grads[:0] = [dgamma, dbeta]
                if i:
                    c_in = padded_shape[3]
                    dpad = np.zeros(padded_shape, dz.dtype)
                    Wk = convs[i].reshape(c_out, k, k, c_in)
                    for r in range(k):
                        for q in range(k):
                            dpad[:, r:r + h, q:q + h] += (dz @ Wk[:, r, q]).reshape(n, h, h, c_in)
                    d = dpad[:, pad:pad + h, pad:pad + h]
            grads[:] = conv_grads + norm_grads + [dW1, dg1, dbe1, dW2, db2]
            update()
    epoch.params = params
    return epoch


def torch_loop(data, args, fused=False, channels_last=False):
    """pytorch_nn's network in a minimal PyTorch loop: no .item(), no accuracy, no loop helper."""
    model = pytorch_nn.model.build(args)
    memory = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory)
    options = {"fused": True} if fused else {}
    opt = (torch.optim.SGD(model.parameters(), args.lr, momentum=0.9, **options) if args.optimizer == "sgd"
           else torch.optim.Adam(model.parameters(), args.lr, **options))
    x_all = torch.from_numpy(data.x_train)
    if channels_last and x_all.dim() == 4:
        x_all = x_all.contiguous(memory_format=memory)
    y_all = torch.from_numpy(data.y_train)

    def step(x, y):  # a function, so that each step's graph is freed before the next one allocates
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def epoch(e):
        for x, y in data_loader.batches(x_all, y_all, args.batch_size, args.seed, e):
            step(x, y)
    return epoch
