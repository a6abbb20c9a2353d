"""The numba kernel behind :mod:`distnet.nn.fused`; importing this module imports numba."""
import numba


def _compiled(function):
    # The machine code is kept beside this file or in the user's cache folder; where neither can
    # be written (a read-only install, no home), each process compiles it again (under a second).
    try:
        return numba.njit(nogil=True, cache=True)(function)
    except RuntimeError:
        return numba.njit(nogil=True)(function)


@_compiled
def _nesterov_run(params, velocity, first, second, two, lr, mu, keep):
    # The NumPy path's operations in its order: g0 + g1, W·keep (L2), g·lr, v·μ − g·lr,
    # (W − g·lr) + v·μ. ``two`` is the same for the whole loop, so the loop vectorizes.
    for i in range(params.shape[0]):
        scaled = ((first[i] + second[i]) if two else first[i]) * lr
        v = velocity[i] * mu - scaled
        velocity[i] = v
        params[i] = (params[i] * keep - scaled) + v * mu


@_compiled
def nesterov_runs(params, velocity, first, second, two, bounds, keeps, lr, mu):
    """The update of each run ``bounds[s]:bounds[s + 1]`` with its L2 factor ``keeps[s]``: one
    loop per run of weights or biases, so that each loop vectorizes."""
    for s in range(keeps.shape[0]):
        run = slice(bounds[s], bounds[s + 1])
        _nesterov_run(params[run], velocity[run], first[run], second[run], two, lr, mu, keeps[s])
