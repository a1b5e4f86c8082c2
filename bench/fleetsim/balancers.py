"""The callers' balancers, vectorized over callers x backends: round robin and gRPC's
``weighted_round_robin``.

``weighted_round_robin`` follows gRFC A58 as grpc-go implements it
(``balancer/weightedroundrobin/balancer.go`` and ``scheduler.go``):

* a load report (per call: the ORCA ``endpoint-load-metrics-bin`` trailer) sets an endpoint's
  weight to ``rps_fractional / (utilization + eps / rps_fractional * errorUtilizationPenalty)``,
  ``utilization`` being ``application_utilization`` when non-zero, else ``cpu_utilization``; a
  report with a zero utilization or a zero ``rps_fractional`` is ignored;
* ``weight()`` is 0 (unusable) until a report has come, while ``now - nonEmptySince <
  blackoutPeriod``, and when ``now - lastUpdated >= weightExpirationPeriod`` (which also clears
  ``nonEmptySince``, so the blackout applies again);
* the scheduler is rebuilt every ``weightUpdatePeriod``: endpoints with weight 0 get the mean of
  the others; with fewer than two usable weights (or all equal) it is plain round robin;
* defaults (``ParseConfig``): blackout 10 s, expiration 3 min, update period 1 s, penalty 1.0.

The EDF scheduler's picks are proportional to the weights; the simulation sends each caller's
flow in those proportions (the uint16 scaling of weights is left out).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]


def round_robin(up: Mask) -> Array:
    """Equal shares over the backends that are up (grpc picks READY subchannels only)."""
    count = int(up.sum())
    return up / count if count else np.zeros(up.shape)


class WeightedRoundRobin:
    """The per-endpoint weight state of ``callers`` channels over ``backends`` endpoints."""

    def __init__(
        self,
        callers: int,
        backends: int,
        *,
        blackout: float = 10.0,
        expiration: float = 180.0,
        penalty: float = 1.0,
    ) -> None:
        self.blackout = blackout
        self.expiration = expiration
        self.penalty = penalty
        self.weight = np.zeros((callers, backends))
        self.last_updated = np.full((callers, backends), -np.inf)
        self.non_empty_since = np.full((callers, backends), np.inf)

    @staticmethod
    def report_weights(utilization: Array, rps: Array, eps: Array, penalty: float) -> Array:
        """Each backend's weight from its report; NaN where the report would be ignored."""
        usable = (utilization > 0) & (rps > 0)
        safe_rps = np.where(rps > 0, rps, 1.0)
        weights = rps / (utilization + eps / safe_rps * penalty + (~usable))
        return np.where(usable, weights, np.nan)

    def on_reports(self, received: Mask, weights: Array, now: float) -> None:
        """Callers that got an answer from a backend this tick take its report
        (``OnLoadReport``)."""
        take = received & ~np.isnan(weights)[None, :]
        if not take.any():
            return
        self.weight = np.where(take, weights[None, :], self.weight)
        self.last_updated[take] = now
        fresh = take & np.isinf(self.non_empty_since)
        self.non_empty_since[fresh] = now

    def reset(self, backend: int) -> None:
        """A backend's subchannel became READY again: no report yet (weight 0, blackout anew)."""
        self.weight[:, backend] = 0.0
        self.last_updated[:, backend] = -np.inf
        self.non_empty_since[:, backend] = np.inf

    def shares_all(self, up: Mask, now: float) -> Array:
        """:meth:`shares` of every caller at once (callers x backends)."""
        expired = now - self.last_updated >= self.expiration
        self.non_empty_since[expired] = np.inf
        usable = ~expired & np.isfinite(self.last_updated)
        if self.blackout > 0:
            usable &= now - self.non_empty_since >= self.blackout
        effective = np.where(usable & up[None, :], self.weight, 0.0)
        nonzero = effective > 0
        count = nonzero.sum(axis=1)
        mean = effective.sum(axis=1) / np.maximum(count, 1)
        filled = np.where(up[None, :] & ~nonzero, mean[:, None], effective)
        total = filled.sum(axis=1)
        weighted = filled / np.where(total > 0, total, 1.0)[:, None]
        plain = round_robin(up)[None, :]
        return np.where((count <= 1)[:, None], plain, weighted)

    def shares(self, caller: int, up: Mask, now: float) -> Array:
        """The split of ``caller``'s calls the scheduler built at ``now`` makes."""
        weight = self.weight[caller]
        expired = now - self.last_updated[caller] >= self.expiration
        self.non_empty_since[caller][expired] = np.inf
        usable = ~expired & np.isfinite(self.last_updated[caller])
        if self.blackout > 0:
            usable &= now - self.non_empty_since[caller] >= self.blackout
        effective = np.where(usable & up, weight, 0.0)
        n_up = int(up.sum())
        nonzero = effective > 0
        if n_up == 0:
            return np.zeros(up.shape)
        if int(nonzero.sum()) <= 1:  # numZero >= n - 1: round robin
            return round_robin(up)
        mean = effective[nonzero].mean()
        filled = np.where(up & ~nonzero, mean, effective)
        return filled / filled.sum()
