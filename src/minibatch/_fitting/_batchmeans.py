"""Bounded-memory summaries of a run of parameter vectors: mean, MCSE, ESS and split-R-hat.

The iterates of a constant-step optimiser form a Markov chain.  :class:`BatchMeans` keeps them
as at most ``max_batches`` consecutive batches, each stored as the sum and the sum of squares
of its iterates; when the batches are all used, neighbours are merged in pairs and the batch
length doubles.  Memory is therefore ``2 * max_batches + 2`` parameter vectors, whatever the
number of iterates (``tests/test_fitting_batchmeans.py`` checks every figure against a direct
computation over the stored trajectory).

From these summaries:

* the **mean** of the window (the averaged iterate);
* the **MCSE** of that mean by the method of non-overlapping batch means: the batch means of a
  stationary chain whose batches are long against its autocorrelation time are nearly
  independent, so ``Var(mean) ~ var(batch means) / batches`` (Flegal and Jones 2010);
* the **ESS**, ``var(iterates) / MCSE**2``;
* **split-R-hat** over ``chains`` consecutive pieces of the window, with the within-piece
  variance of the iterates themselves (Gelman et al., BDA3 section 11.4): it is near 1 only when
  each piece is long against the autocorrelation time *and* the pieces agree, so it also tells
  when batches are too short for the MCSE to be trusted.

>>> import numpy as np
>>> chain = BatchMeans(size=2, max_batches=8, batch_size=5)
>>> draws = np.random.default_rng(0).normal(size=(400, 2))
>>> for x in draws:
...     _ = chain.add(x)
>>> chain.count, chain.batch_size, chain.iterates
(5, 80, 400)
>>> bool(np.allclose(chain.mean(), draws.mean(0)))
True
>>> bool(np.all(chain.rhat() < 1.1))
True
"""

from __future__ import annotations

import numpy as np


class BatchMeans:
    """Consecutive batches of a run of vectors, in bounded memory (see the module docstring)."""

    def __init__(self, size: int, max_batches: int = 16, batch_size: int = 25) -> None:
        if max_batches < 8 or max_batches % 2:
            raise ValueError(f"max_batches must be an even number >= 8, got {max_batches}")
        self.max_batches = max_batches
        self.batch_size = batch_size
        self.sums = np.zeros((max_batches, size))
        self.squares = np.zeros((max_batches, size))
        self.count = 0  # completed batches
        self._sum = np.zeros(size)
        self._square = np.zeros(size)
        self._scratch = np.zeros(size)
        self._filled = 0  # iterates in the batch being filled

    @property
    def iterates(self) -> int:
        """How many iterates the completed batches hold."""
        return self.count * self.batch_size

    @property
    def to_complete(self) -> int:
        """How many more iterates complete the batch being filled."""
        return self.batch_size - self._filled

    def add(self, x: np.ndarray) -> bool:
        """Add one iterate; return whether it completed a batch."""
        np.multiply(x, x, out=self._scratch)  # no temporary per step: this runs at every step
        return self.add_sums(x, self._scratch, 1)

    def add_sums(self, total: np.ndarray, square: np.ndarray, count: int) -> bool:
        """Add ``count`` iterates by their sum and sum of squares (they must not run past the
        batch being filled); return whether they completed it."""
        if not 0 < count <= self.to_complete:
            raise ValueError(
                f"{count} iterates do not fit the {self.to_complete} left in the current batch"
            )
        self._sum += total
        self._square += square
        self._filled += count
        if self._filled < self.batch_size:
            return False
        self.sums[self.count] = self._sum
        self.squares[self.count] = self._square
        self.count += 1
        self._sum[:] = 0.0
        self._square[:] = 0.0
        self._filled = 0
        if self.count == self.max_batches:
            self._merge_pairs()
        return True

    def _merge_pairs(self) -> None:
        half = self.count // 2
        for store in (self.sums, self.squares):
            store[:half] = store[0 : 2 * half : 2] + store[1 : 2 * half : 2]
            store[half:] = 0.0
        self.count = half
        self.batch_size *= 2

    def drop_first_half(self) -> None:
        """Forget the older half of the completed batches (a transient)."""
        drop = self.count // 2
        keep = self.count - drop
        for store in (self.sums, self.squares):
            store[:keep] = store[drop : self.count]
            store[keep:] = 0.0
        self.count = keep

    def mean(self, partial: bool = False) -> np.ndarray:
        """The mean of the completed batches (and, with ``partial``, of the batch being filled)."""
        total = self.sums[: self.count].sum(0)
        n = self.iterates
        if partial:
            total = total + self._sum
            n += self._filled
        if n == 0:
            raise ValueError("no iterate has been added yet")
        return total / n

    def variance(self) -> np.ndarray:
        """The variance of the iterates in the completed batches."""
        n = self.iterates
        mean = self.sums[: self.count].sum(0) / n
        return np.maximum(self.squares[: self.count].sum(0) / n - mean * mean, 0.0)

    def mcse(self) -> np.ndarray:
        """The Monte Carlo standard error of :meth:`mean`, by non-overlapping batch means."""
        if self.count < 2:
            raise ValueError("the MCSE needs at least two completed batches")
        means = self.sums[: self.count] / self.batch_size
        return np.sqrt(means.var(0, ddof=1) / self.count)

    def ess(self) -> np.ndarray:
        """The effective sample size of :meth:`mean` (``variance / mcse**2``)."""
        mcse = self.mcse()
        with np.errstate(divide="ignore", invalid="ignore"):
            ess = self.variance() / mcse**2
        return np.where(mcse > 0, ess, float(self.iterates))

    def pieces(self, chains: int = 4) -> tuple[np.ndarray, np.ndarray, int]:
        """The means and within-variances of ``chains`` equally long consecutive pieces of the
        completed batches (the oldest ``count % chains`` batches left out), and their length."""
        per = self.count // chains
        if per < 1:
            raise ValueError(f"{chains} pieces need {chains} completed batches, got {self.count}")
        start = self.count - per * chains
        n = per * self.batch_size
        sums = self.sums[start : self.count].reshape(chains, per, -1).sum(1)
        squares = self.squares[start : self.count].reshape(chains, per, -1).sum(1)
        means = sums / n
        within = np.maximum((squares - n * means * means) / (n - 1), 0.0)
        return means, within, n

    def rhat(self, chains: int = 4) -> np.ndarray:
        """Split-R-hat over ``chains`` consecutive pieces of the completed batches.

        A parameter that does not move at all gets 1.
        """
        means, within, n = self.pieces(chains)
        within = within.mean(0)
        pooled = (n - 1) / n * within + means.var(0, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            rhat = np.sqrt(pooled / within)
        return np.where(within > 0, rhat, 1.0)

    def drift(self, chains: int = 4) -> np.ndarray:
        """The standard deviation of the pieces' means: how far the window's parts disagree."""
        return self.pieces(chains)[0].std(0, ddof=1)
