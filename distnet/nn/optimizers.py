"""Optimizers: small objects with explicit state that update a flat parameter vector in place.

Every optimizer works on the whole flat vector at once (the original kept state per layer;
element-wise rules make the two identical). State is created on the first step, can be exported
with :meth:`Optimizer.state` for checkpoints and restored with :meth:`Optimizer.load_state`.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from ..checks import Checked, fraction, instance_of, positive_real, whole_number, with_article
from ..errors import ConfigError
from ..spec import Component, component
from . import fused


class Optimizer(Component):
    """Base class: subclasses define ``step``; state arrays (velocity, moments) are created on first use.

    The state belongs to the parameters it was made for: an optimizer updates one network (a
    second :class:`~distnet.Trainer` given the same optimizer continues with its state), and one
    with state (all but GradientDescent) refuses a parameter vector of another size or dtype with
    ConfigError, when it steps and when a trainer starts a fit.
    """

    # The names of the state :meth:`state` holds once the optimizer has stepped (none before).
    state_keys: tuple[str, ...] = ()
    # Settings are checked whenever they are set, after construction too (a schedule sets the rate).
    learning_rate = Checked(lambda name, value: positive_real("the learning rate", value))

    def __init__(self, learning_rate: float):
        self.learning_rate = learning_rate
        self._state: dict[str, np.ndarray] = {}

    def step(self, params: np.ndarray, grad: np.ndarray, scale: float = 1.0) -> None:
        """Apply one update to ``params`` (in place) from the mean gradient ``grad · scale``;
        ``grad`` is only read, and must be an array of the shape and dtype of ``params``
        (ConfigError otherwise).

        Callers holding a *summed* gradient pass ``scale = 1 / samples`` rather than dividing
        first: the optimizers fold it into a scalar, which saves a pass over the gradient.
        """
        raise NotImplementedError

    def _slot(self, key: str, like: np.ndarray) -> np.ndarray:
        if key not in self._state:
            self._state[key] = np.zeros_like(like)
        slot = self._state[key]
        # State of other parameters would be broadcast, or read past its end by the compiled update.
        if slot.shape != like.shape or slot.dtype != like.dtype:
            self._refuse(key, slot, like)
        return slot

    def check_state_fits(self, params: np.ndarray) -> None:
        """ConfigError unless the state (if any yet) is for a parameter vector like ``params``:
        what a trainer checks before it trains (a parameter server elsewhere would fail later)."""
        for key, slot in self._state.items():
            if slot.ndim and (slot.shape != params.shape or slot.dtype != params.dtype):  # not Adam's count
                self._refuse(key, slot, params)

    def _refuse(self, key: str, slot: np.ndarray, params: np.ndarray) -> None:
        raise ConfigError(f"this {type(self).__name__} optimizer holds its {key.replace('_', ' ')} for "
                          f"{slot.size} {slot.dtype} parameters, not for these {params.size} {params.dtype} "
                          f"ones: an optimizer's state belongs to the network it updates (this one has "
                          f"updated another, or was given another's state); give each network an "
                          f"optimizer of its own, e.g. {self!r} (for a trainer: a new one, Trainer(network, "
                          f"{self!r}); a trainer's optimizer is fixed)")

    def state(self) -> dict[str, np.ndarray]:
        """Copies of the state arrays, by name (empty before the first step)."""
        return {k: v.copy() for k, v in self._state.items()}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Replace the state with copies of ``state``, as :meth:`state` returned it (a checkpoint's):
        empty, or all of :attr:`state_keys`. ConfigError for anything else, such as another kind of
        optimizer's state, and the state is left as it was."""
        instance_of("an optimizer's state", state, dict, "the dict its state() returns")
        if state and set(state) != set(self.state_keys):
            name = type(self).__name__
            keeps = (f"holds {', '.join(map(repr, self.state_keys))} (nothing before its first step)"
                     if self.state_keys else "is always empty")
            raise ConfigError(f"the state of {with_article(name)} optimizer {keeps}, but the state given holds "
                              f"{', '.join(map(repr, state))}: give it what the state() of {with_article(name)} "
                              f"returned (another optimizer's state, or a part of one, does not fit it)")
        self._state = {key: self._loaded(key, value) for key, value in state.items()}

    def _loaded(self, key: str, value: ArrayLike) -> np.ndarray:
        """A copy of ``state[key]`` to keep (its size and dtype are checked against the parameters
        at the next step, or when a trainer starts a fit)."""
        return np.array(value, copy=True)

    def spec(self) -> dict:
        """A JSON-able description (name, learning rate and the rule's other settings; no state), the
        inverse of :func:`optimizer_from_spec`."""
        return {**super().spec(), "learning_rate": self.learning_rate}


class GradientDescent(Optimizer):
    """W −= lr·g."""

    name = "gradient_descent"

    def __init__(self, learning_rate: float = 0.005):
        super().__init__(learning_rate)

    def step(self, params: np.ndarray, grad: np.ndarray, scale: float = 1.0) -> None:
        check_gradient(params, grad)
        params -= params.dtype.type(self.learning_rate * scale) * grad


class _WithMomentum(Optimizer):
    """An optimizer that keeps a velocity, decayed by ``momentum`` each step."""

    state_keys = ("velocity",)
    momentum = Checked(fraction)

    def __init__(self, learning_rate: float, momentum: float = 0.9):
        super().__init__(learning_rate)
        self.momentum = momentum

    def spec(self) -> dict:
        return {**super().spec(), "momentum": self.momentum}


class Momentum(_WithMomentum):
    """v = μ·v + lr·g; W −= v."""

    name = "momentum"

    def step(self, params: np.ndarray, grad: np.ndarray, scale: float = 1.0) -> None:
        check_gradient(params, grad)
        v = self._slot("velocity", params)
        v *= self.momentum
        v += params.dtype.type(self.learning_rate * scale) * grad
        params -= v


class Nesterov(_WithMomentum):
    """The original's Nesterov momentum:
    v_prev = v;  v = μ·v − lr·g;  W += −μ·v_prev + (1 + μ)·v.
    """

    name = "nesterov"

    def __init__(self, learning_rate: float, momentum: float = 0.9):
        super().__init__(learning_rate, momentum)
        self._scratch: np.ndarray | None = None

    def step(self, params: np.ndarray, grad: np.ndarray, scale: float = 1.0) -> None:
        check_gradient(params, grad)
        mu = params.dtype.type(self.momentum)
        v = self.velocity(params)
        if self._scratch is None or self._scratch.shape != v.shape or self._scratch.dtype != v.dtype:
            self._scratch = np.empty_like(v)
        # The same update, rearranged: −μ·v_prev + (1 + μ)·v = μ·v − lr·g. In place through one
        # preallocated scratch vector: this runs once per mini-batch on the hot path.
        scaled_grad = np.multiply(grad, params.dtype.type(self.learning_rate * scale), out=self._scratch)
        v *= mu
        v -= scaled_grad
        params -= scaled_grad
        params += np.multiply(v, mu, out=self._scratch)

    def velocity(self, like: np.ndarray) -> np.ndarray:
        """The velocity vector, zeros shaped like ``like`` before the first step; updated in place
        by :meth:`step` (and by the one-pass update of :class:`UpdateRule`)."""
        return self._slot("velocity", like)


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; not in the original.

    m = β1·m + (1 − β1)·g;  s = β2·s + (1 − β2)·g²;  W −= lr·m̂ / (√ŝ + ε).
    """

    name = "adam"
    state_keys = ("mean", "square_mean", "t")
    beta1 = Checked(lambda name, value: fraction("Adam's beta1", value))
    beta2 = Checked(lambda name, value: fraction("Adam's beta2", value))
    epsilon = Checked(lambda name, value: positive_real("Adam's epsilon", value))

    def __init__(self, learning_rate: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 epsilon: float = 1e-8):
        super().__init__(learning_rate)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon

    def step(self, params: np.ndarray, grad: np.ndarray, scale: float = 1.0) -> None:
        check_gradient(params, grad)
        if scale != 1:
            grad = grad * params.dtype.type(scale)  # squared below, so scaled first
        m = self._slot("mean", params)
        s = self._slot("square_mean", params)
        t = self._state.setdefault("t", np.zeros((), dtype=np.int64))
        t += 1
        m *= self.beta1
        m += (1 - self.beta1) * grad
        s *= self.beta2
        s += (1 - self.beta2) * grad * grad
        m_hat = m / params.dtype.type(1 - self.beta1 ** int(t))
        s_hat = s / params.dtype.type(1 - self.beta2 ** int(t))
        params -= params.dtype.type(self.learning_rate) * m_hat / (np.sqrt(s_hat) + params.dtype.type(self.epsilon))

    def _loaded(self, key: str, value: ArrayLike) -> np.ndarray:
        if key != "t":
            return super()._loaded(key, value)
        # The step count sets the bias correction, and the step reads it as one whole number;
        # state() holds it from the first step on, so it is at least 1.
        return np.array(whole_number("Adam's step count 't'", np.asarray(value)[()], 1), dtype=np.int64)

    def spec(self) -> dict:
        return {**super().spec(), "beta1": self.beta1, "beta2": self.beta2, "epsilon": self.epsilon}


def check_gradient(params: np.ndarray, grad: np.ndarray, what: str = "the gradient") -> None:
    """ConfigError unless ``grad`` is an array of the shape and dtype of ``params``: NumPy would
    broadcast a gradient of one element over every parameter, and the one-pass update (numba)
    takes none of another dtype. Compares shapes and dtypes only: no pass over the arrays."""
    if not isinstance(grad, np.ndarray) or grad.shape != params.shape or grad.dtype != params.dtype:
        got = (f"one of shape {grad.shape} and dtype {grad.dtype}" if isinstance(grad, np.ndarray)
               else with_article(type(grad).__name__))
        raise ConfigError(f"{what} must be an array of the parameters' shape {params.shape} and dtype "
                          f"{params.dtype}, got {got}: pass the gradient of these parameters, in their dtype")


def check_gradients(params: np.ndarray, grads: Sequence[np.ndarray]) -> None:
    """ConfigError unless ``grads`` holds at least one gradient and each is an array of the shape
    and dtype of ``params`` (see :func:`check_gradient`): what :meth:`UpdateRule.apply_sum` takes."""
    if not len(grads):
        raise ConfigError("apply_sum needs at least one gradient to update the parameters, got none")
    for i, grad in enumerate(grads):
        check_gradient(params, grad, "the gradient" if len(grads) == 1 else f"gradient {i} of {len(grads)}")


OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.name: cls for cls in (GradientDescent, Momentum, Nesterov, Adam)
}


def optimizer_from_spec(spec: Optimizer | dict | str) -> Optimizer:
    """Build an optimizer from its name or from the dict :meth:`Optimizer.spec` returns (an
    :class:`Optimizer` is returned as it is)."""
    return component(spec, Optimizer, OPTIMIZERS, "optimizer")


class UpdateRule:
    """One update of the original's ``updateFromLearning``: L2 decay of the weights, then the
    optimizer step with the mean gradient.

    L2 is the original's: every weight is multiplied by (1 − l2) once per update, independent of
    the learning rate and the data size; biases are not decayed. The single-process trainer and
    the parameter server both apply updates through this one class. With numba installed
    (the ``fast`` extra), L2 and a :class:`Nesterov` step run as one compiled pass over the vectors
    that gives bit-for-bit the same values (:mod:`distnet.nn.fused`).
    """

    l2 = Checked(fraction)

    def __init__(self, optimizer: Optimizer, l2: float = 0.0, weight_slices: list[slice] | None = None):
        instance_of("optimizer", optimizer, Optimizer, "Nesterov(0.02, 0.87)")
        self.l2 = l2
        if self.l2 and not weight_slices:
            raise ConfigError("L2 needs the weight_slices of the network (network.weight_slices)")
        self.optimizer = optimizer
        self.weight_slices = list(weight_slices or [])
        self._grad_sum: np.ndarray | None = None
        self._segments: tuple[int, np.dtype, float, np.ndarray, np.ndarray] | None = None

    def apply(self, params: np.ndarray, grad: np.ndarray, scale: float = 1.0) -> None:
        """Update ``params`` in place from the mean gradient ``grad · scale`` (see
        :meth:`Optimizer.step`)."""
        self.apply_sum(params, (grad,), scale)

    def apply_sum(self, params: np.ndarray, grads: Sequence[np.ndarray], scale: float = 1.0) -> None:
        """Update ``params`` in place from the mean gradient ``(grads[0] + grads[1] + ...) · scale``,
        summed in that order (a parameter server's workers' gradients); the gradients are only read,
        and each must be an array of the shape and dtype of ``params`` (ConfigError otherwise)."""
        check_gradients(params, grads)  # before any is summed, for both the one-pass and the NumPy update
        one_pass = isinstance(self.optimizer, Nesterov) and fused.available()
        # The one-pass update adds the last gradient itself; the rest are summed first, in order,
        # ((g0 + g1) + g2) + ..., as one sum over the whole list would be.
        summed_first = grads[:-1] if one_pass else grads
        if len(summed_first) > 1:
            grads = [self._sum(summed_first), *grads[len(summed_first):]]
        if one_pass:
            bounds, keeps = self._segments_of(params)
            fused.nesterov_update(params, self.optimizer.velocity(params), grads,
                                  self.optimizer.learning_rate * scale, self.optimizer.momentum, bounds, keeps)
            return
        if self.l2:
            keep = params.dtype.type(1 - self.l2)
            for weights in self.weight_slices:
                params[weights] *= keep
        self.optimizer.step(params, grads[0], scale)

    def _sum(self, grads: Sequence[np.ndarray]) -> np.ndarray:
        first = grads[0]
        if self._grad_sum is None or self._grad_sum.shape != first.shape or self._grad_sum.dtype != first.dtype:
            self._grad_sum = np.empty_like(first)
        total = np.add(first, grads[1], out=self._grad_sum)
        for grad in grads[2:]:
            total += grad
        return total

    def _segments_of(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._segments is None or self._segments[:3] != (params.size, params.dtype, self.l2):
            bounds, keeps = fused.segments(params.size, self.weight_slices, 1 - self.l2, params.dtype)
            self._segments = (params.size, params.dtype, self.l2, bounds, keeps)
        return self._segments[3:]
