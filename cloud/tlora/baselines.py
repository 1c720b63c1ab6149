"""The baselines tLoRA (arXiv 2602.07263) is measured against, as schedulers of the same
interface as :class:`cloud.tlora.policy.TloraScheduler` (so the simulator and the runtime drive
them the same way):

- :class:`SoloFifo`: each job alone, one after another in arrival order on each worker (the
  PEFT-style per-job baseline: one adapter per model, no sharing).
- :class:`SoloSplit`: each job alone, all started at once, the machine's cores split among the
  concurrent jobs (one group per job, more groups than workers: they time-share the workers).
- :class:`FifoColocate`: every job joins a shared super-model group at arrival, in FIFO order,
  without the capacity check or the slowdown bound (mLoRA-style co-location); with several
  workers, onto the group with the fewest members.
"""

from __future__ import annotations

from cloud.tlora.cost import JobShape
from cloud.tlora.policy import Book, Placement, Worker


class SoloFifo(Book):
    name = "solo_fifo"

    def _place(self, now: float, departed: bool) -> None:
        for members in self.groups.values():
            if not members and self.queue:
                members.append(self.queue.pop(0))


class SoloSplit(SoloFifo):
    """A virtual worker is added whenever none is free, so every job starts on arrival; the
    executor (the simulator's processor sharing, or processes with split threads) divides the
    cores among them."""

    name = "solo_split"

    def arrive(self, job: JobShape, now: float) -> Placement:
        if all(self.groups.values()):
            index = max(self.groups) + 1
            self.groups[index] = []
            self.workers = (*self.workers, Worker(index, max(w.capacity_tokens for w in self.workers)))
        return super().arrive(job, now)


class FifoColocate(Book):
    name = "fifo_colocate"

    def _check(self, job: JobShape) -> None:
        """No capacity check (that is the point of this baseline)."""

    def _place(self, now: float, departed: bool) -> None:
        while self.queue:
            w = min(self.groups, key=lambda w: (len(self.groups[w]), w))
            self.groups[w].append(self.queue.pop(0))
