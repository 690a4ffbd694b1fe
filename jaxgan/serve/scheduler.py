"""Which batch size a pool runs: chosen from measured session-steps/s per power-of-two bucket.

A pool with n running sessions advances them all once per tick, in ceil(n / b) calls of a compiled step for b
sessions. Larger b means fewer calls but not always less time: on a 2-core CPU one 256 px DragGAN step for 16
sessions took longer than 16 steps of one. So every bucket's seconds per call are measured as the pool runs (the
first call of a bucket, which compiles, is not counted), and each tick takes the bucket with the least estimated
time ceil(n / b) * t(b), larger buckets only when at least 10% faster than the smaller choice. Buckets not measured yet are tried once when they could help, so the server learns its
machine; with `--warmup` every bucket is measured at start. Batch 1 is always a candidate, so the server is never
slower than running its sessions one after another, beyond its per-call overhead.
"""

import math
import statistics

SAMPLES = 5  # calls per bucket kept (the median is used)
MARGIN = 0.1  # a larger bucket is chosen only when its estimated tick is at least 10% shorter


def buckets_up_to(max_batch: int) -> list[int]:
    """1, 2, 4, ..., max_batch."""
    return [2 ** k for k in range(int(math.log2(max_batch)) + 1)]


def bucket_for(count: int) -> int:
    """The smallest power of two >= count."""
    return 1 << max(0, count - 1).bit_length()


class BucketPolicy:
    """Seconds per call of each bucket, and the choice of bucket for n sessions."""

    def __init__(self, max_batch: int):
        self.buckets = buckets_up_to(max_batch)
        self.samples: dict[int, list[float]] = {b: [] for b in self.buckets}
        self.compiled: set[int] = set()
        self.calls: dict[int, int] = {b: 0 for b in self.buckets}

    def seconds(self, bucket: int) -> float | None:
        times = self.samples[bucket]
        return statistics.median(times) if times else None

    def record(self, bucket: int, seconds: float) -> None:
        """One call's wall time; the first call of a bucket compiled, so it is not a sample."""
        self.calls[bucket] += 1
        if bucket not in self.compiled:
            self.compiled.add(bucket)
            return
        times = self.samples[bucket]
        times.append(seconds)
        del times[:-SAMPLES]

    def choose(self, count: int) -> int:
        """The bucket to run `count` sessions in this tick."""
        candidates = [b for b in self.buckets if b <= bucket_for(count)]
        for b in candidates:  # learn first: a bucket that may pay and has fewer than 2 samples is tried
            if b > 1 and len(self.samples[b]) < 2 and self._may_pay(b):
                return b
        estimates = {b: math.ceil(count / b) * self.seconds(b) for b in candidates if self.seconds(b) is not None}
        if not estimates:
            return 1
        # A larger bucket must be clearly faster: once chosen, the smaller ones are no longer measured, so a choice
        # made on noise (estimates within a few percent, as on a CPU where batching does not pay) would stick.
        chosen = min(estimates)
        for b in sorted(estimates):
            if estimates[b] < (1 - MARGIN) * estimates[chosen]:
                chosen = b
        return chosen

    def _may_pay(self, bucket: int) -> bool:
        """Whether an unmeasured bucket could beat what is known: skipped once a smaller bucket is known not to
        beat batch 1 per session by the margin (batching that does not pay at 4 will not pay at 16 on the same
        machine, and trying it would stall every session for its compilation)."""
        one = self.seconds(1)
        if one is None:
            return False  # measure batch 1 first
        for smaller in self.buckets:
            if smaller >= bucket or smaller == 1:
                continue
            t = self.seconds(smaller)
            if t is not None and len(self.samples[smaller]) >= 2 and t / smaller >= (1 - MARGIN) * one:
                return False
        return True

    def report(self) -> dict:
        """{bucket: {"seconds_per_call", "session_steps_per_s", "calls"}} for the measured buckets (calls counts
        the warm-up's too)."""
        out = {}
        for b in self.buckets:
            t = self.seconds(b)
            if t is not None:
                out[str(b)] = {"seconds_per_call": round(t, 6), "session_steps_per_s": round(b / t, 3),
                               "calls": self.calls[b]}
        return out
