"""Optimizers and learning-rate schedules, written to torch.optim's own formulas, operation for operation,
so that the twins agree to float64 rounding. Each keeps its state per parameter name and updates in place;
numpy_nn's trainer hands them one name, "all", for the model's flat buffers (numpy_nn/model.py), so that a
step is a dozen whole-model operations. state_dict() is torch.optim's: the per-parameter state arrays
(named as torch names them) and the numbers.
"""
import math

from numpy_nn.layers import array_module


class SGD:
    """torch.optim.SGD (dampening 0): g = grad + wd*p; buf = g, then momentum*buf + g;
    step along buf, or g + momentum*buf with nesterov."""

    def __init__(self, params, grads, lr, momentum=0.0, nesterov=False, weight_decay=0.0, decay_mask=None):
        if nesterov and momentum <= 0:
            raise ValueError("nesterov needs momentum > 0")
        self.params, self.grads = params, grads  # name -> array; the layers' own arrays, shared
        self.lr, self.momentum, self.nesterov, self.weight_decay = lr, momentum, nesterov, weight_decay
        self.decay = decay_rate(weight_decay, decay_mask)
        self.buf, self.steps = {}, 0  # a momentum buffer per parameter from the first step on
        self.xp = array_module(*params.values())

    def state_dict(self):
        return {f"momentum_buffer.{name}": b for name, b in self.buf.items()}, {"steps": self.steps}

    def load_state_dict(self, arrays, numbers):
        """Refuses a state that has taken steps with momentum but lacks a buffer: resuming from zeros would
        silently be another run."""
        buf = {k.split(".", 1)[1]: self.xp.array(v) for k, v in arrays.items() if k.startswith("momentum_buffer.")}
        missing = [name for name in self.params if name not in buf]
        if self.momentum and numbers.get("steps", 0) > 0 and missing:
            raise ValueError(f"the optimizer's state lacks the momentum buffer of {', '.join(missing)}")
        self.buf, self.steps = buf, numbers.get("steps", 0)

    def step(self):
        self.steps += 1
        for name, p in self.params.items():
            g = self.grads[name]
            if self.weight_decay:
                g = g + self.decay * p
            if self.momentum:
                buf = self.buf.get(name)
                if buf is None:
                    buf = self.buf[name] = g.copy()
                else:
                    buf *= self.momentum
                    buf += g
                g = g + self.momentum * buf if self.nesterov else buf
            p -= self.lr * g


class Averages:
    """What Adam and Adadelta share: two running averages per parameter, saved as torch.optim saves them. AVERAGES
    pairs each with its torch name: (torch's name, this optimizer's attribute)."""

    def state_dict(self):
        return {f"{key}.{k}": v for key, attr in self.AVERAGES for k, v in getattr(self, attr).items()}, {"step": self.t}

    def load_state_dict(self, arrays, numbers):
        """Refuses a state without its step count or without both averages of every parameter."""
        missing = [f"{key}.{name}" for name in self.params for key, _ in self.AVERAGES if f"{key}.{name}" not in arrays]
        if missing or "step" not in numbers:
            raise ValueError(f"the optimizer's state lacks {', '.join(missing or ['its step count'])}")
        self.t = numbers["step"]
        for key, attr in self.AVERAGES:
            for name in self.params:
                getattr(self, attr)[name][...] = self.xp.asarray(arrays[f"{key}.{name}"])


class Adam(Averages):
    """torch.optim.Adam, or AdamW with decoupled=True (decay the weights, not the gradient).

    m += (1-b1)(g - m);  v = b2 v + (1-b2) g^2;  p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
    """
    AVERAGES = (("exp_avg", "m"), ("exp_avg_sq", "v"))

    def __init__(self, params, grads, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False,
                 decay_mask=None):
        self.params, self.grads = params, grads
        self.lr, self.betas, self.eps = lr, betas, eps
        self.weight_decay, self.decoupled, self.decay = weight_decay, decoupled, decay_rate(weight_decay, decay_mask)
        self.t = 0
        self.xp = array_module(*params.values())
        self.m = {name: self.xp.zeros_like(p) for name, p in params.items()}
        self.v = {name: self.xp.zeros_like(p) for name, p in params.items()}
        self.tmp = {name: self.xp.empty_like(p) for name, p in params.items()}  # scratch: no allocation per step

    def step(self):
        self.t += 1
        b1, b2 = self.betas
        step_size = self.lr / (1 - b1 ** self.t)
        bias_correction2_sqrt = (1 - b2 ** self.t) ** 0.5
        xp = self.xp
        for name, p in self.params.items():
            g, m, v, tmp = self.grads[name], self.m[name], self.v[name], self.tmp[name]
            if self.weight_decay:
                if self.decoupled:
                    p *= 1 - self.lr * self.decay
                else:
                    g = g + self.decay * p
            xp.subtract(g, m, out=tmp)          # m += (1 - b1) * (g - m)
            tmp *= 1 - b1
            m += tmp
            xp.multiply(g, 1 - b2, out=tmp)     # v = b2 * v + (1 - b2) * g * g
            tmp *= g
            v *= b2
            v += tmp
            xp.sqrt(v, out=tmp)                 # p -= step_size * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
            tmp /= bias_correction2_sqrt
            tmp += self.eps
            xp.divide(m, tmp, out=tmp)
            tmp *= step_size
            p -= tmp


class Adadelta(Averages):
    """torch.optim.Adadelta (Zeiler 2012): g = grad + wd*p;  v = rho v + (1-rho) g^2;
    delta = sqrt(u + eps) / sqrt(v + eps) * g;  u = rho u + (1-rho) delta^2;  p -= lr * delta."""
    AVERAGES = (("square_avg", "v"), ("acc_delta", "u"))

    def __init__(self, params, grads, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, decay_mask=None):
        self.params, self.grads = params, grads
        self.lr, self.rho, self.eps, self.weight_decay = lr, rho, eps, weight_decay
        self.decay = decay_rate(weight_decay, decay_mask)
        self.t = 0
        self.xp = array_module(*params.values())
        self.v = {name: self.xp.zeros_like(p) for name, p in params.items()}  # torch's square_avg
        self.u = {name: self.xp.zeros_like(p) for name, p in params.items()}  # torch's acc_delta
        self.tmp = {name: self.xp.empty_like(p) for name, p in params.items()}

    def step(self):
        self.t += 1
        xp, rho = self.xp, self.rho
        for name, p in self.params.items():
            g, v, u, delta = self.grads[name], self.v[name], self.u[name], self.tmp[name]
            if self.weight_decay:
                g = g + self.decay * p
            v *= rho                            # v = rho * v + (1 - rho) * g * g
            v += (1 - rho) * g * g
            xp.add(u, self.eps, out=delta)      # delta = sqrt(u + eps) / sqrt(v + eps) * g
            xp.sqrt(delta, out=delta)
            delta /= xp.sqrt(v + self.eps)
            delta *= g
            u *= rho                            # u = rho * u + (1 - rho) * delta * delta
            u += (1 - rho) * delta * delta
            p -= self.lr * delta


def decay_rate(weight_decay, mask=None):
    """The decay rate of each element: weight_decay, or with a mask (1 where a parameter is decayed, 0 where not)
    weight_decay * mask, what torch does with a parameter group at weight_decay 0 (1 - lr * 0 multiplies by 1)."""
    return weight_decay if mask is None else weight_decay * mask


def clip_grad_norm(grads, max_norm, eps=1e-6) -> float:
    """torch.nn.utils.clip_grad_norm_: the gradients' global norm (all of them as one vector, here the flat buffer),
    and every gradient scaled by max_norm / (norm + eps) where that is below 1. Returns the norm before clipping."""
    norm = float(array_module(grads).linalg.norm(grads))
    if max_norm / (norm + eps) < 1:
        grads *= max_norm / (norm + eps)
    return norm


def AdamW(params, grads, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, decay_mask=None):
    """torch.optim.AdamW: Adam with weight decay applied to the weights directly."""
    return Adam(params, grads, lr, betas, eps, weight_decay, decoupled=True, decay_mask=decay_mask)


def onecycle_lr(step, total_steps, max_lr, warmup=0.3, div_factor=25.0, final_div_factor=1e4):
    """The learning rate after `step` updates (0: the first update's) of torch.optim.lr_scheduler.OneCycleLR with
    cycle_momentum off, two phases and cosine annealing, operation for operation: from max_lr / div_factor up to
    max_lr over the first `warmup` of the steps, then down to max_lr / div_factor / final_div_factor."""
    initial = max_lr / div_factor
    phases = [(float(warmup * total_steps) - 1, initial, max_lr), (total_steps - 1, max_lr, initial / final_div_factor)]
    start_step = 0.0
    for i, (end_step, start_lr, end_lr) in enumerate(phases):
        if step <= end_step or i == len(phases) - 1:
            pct = (step - start_step) / (end_step - start_step)
            return end_lr + (start_lr - end_lr) / 2.0 * (math.cos(math.pi * pct) + 1)
        start_step = end_step


def lr_at(epoch, base_lr, schedule="constant", epochs=1, step_size=1, gamma=0.1):
    """The learning rate of a 0-based epoch, as torch.optim.lr_scheduler defines it (stepped once per epoch).

    step: StepLR, base * gamma^(epoch // step_size).  cosine: CosineAnnealingLR with T_max=epochs, eta_min=0,
    base * (1 + cos(pi * epoch / epochs)) / 2.
    """
    if schedule == "constant":
        return base_lr
    if schedule == "step":
        return base_lr * gamma ** (epoch // step_size)
    if schedule == "cosine":
        return base_lr * (1 + math.cos(math.pi * epoch / epochs)) / 2
    raise ValueError(f"unknown schedule {schedule!r}")


def make_optimizer(args, model):
    """The optimizer the flags ask for, over the model's flat buffers: one name, "all", for every parameter
    (one kernel over all of them, as torch's fused optimizers)."""
    params, grads = {"all": model.flat_params}, {"all": model.flat_grads}
    mask = model.decay_mask() if getattr(args, "decay", "all") == "matrices" and args.weight_decay else None
    if args.optimizer == "sgd":
        return SGD(params, grads, args.lr, args.momentum, args.nesterov, args.weight_decay, mask)
    if args.optimizer == "adam":
        return Adam(params, grads, args.lr, args.betas, weight_decay=args.weight_decay, decay_mask=mask)
    if args.optimizer == "adadelta":
        return Adadelta(params, grads, args.lr, weight_decay=args.weight_decay, decay_mask=mask)
    return AdamW(params, grads, args.lr, args.betas, weight_decay=args.weight_decay, decay_mask=mask)
