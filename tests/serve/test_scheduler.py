"""The bucket policy: batch sizes chosen from measured times, never slower than one session at a time."""

from jaxgan.serve.scheduler import BucketPolicy, bucket_for, buckets_up_to


def feed(policy, bucket, seconds, calls=3):
    for _ in range(calls):
        policy.record(bucket, seconds)


def test_buckets():
    assert buckets_up_to(16) == [1, 2, 4, 8, 16]
    assert [bucket_for(n) for n in (1, 2, 3, 4, 5, 16, 17)] == [1, 2, 4, 4, 8, 16, 32]


def test_the_first_call_of_a_bucket_compiles_and_is_not_a_sample():
    policy = BucketPolicy(4)
    policy.record(1, 9.0)  # the compile
    policy.record(1, 0.1)
    assert policy.seconds(1) == 0.1


def test_batching_is_used_where_it_pays():
    policy = BucketPolicy(16)
    feed(policy, 1, 1.0)
    assert policy.choose(16) == 2  # unmeasured buckets that may pay are tried
    for b in (2, 4, 8, 16):
        feed(policy, b, 1.0 + 0.1 * b)  # a GPU: a batch costs little more than one
    assert policy.choose(16) == 16
    assert policy.choose(5) == 8  # one call of 8 (1.8 s) beats 4+1 (2.4 s) and five of 1
    assert policy.choose(1) == 1


def test_batching_that_does_not_pay_falls_back_to_one_at_a_time():
    policy = BucketPolicy(16)
    feed(policy, 1, 1.0)
    feed(policy, 2, 2.4)  # the 2-core CPU: a batch of 2 costs more than two steps of one
    assert policy.choose(16) == 1  # and larger buckets are not tried
    assert policy.report()["1"]["session_steps_per_s"] == 1.0


def test_a_larger_bucket_must_be_clearly_faster():
    policy = BucketPolicy(4)
    feed(policy, 1, 0.768)  # measured at 256 px on the 2-core CPU: batching does not pay,
    feed(policy, 2, 1.512)  # and these differences are noise
    feed(policy, 4, 3.043)
    assert policy.choose(4) == 1
    feed(policy, 4, 2.0, calls=5)  # 33% faster than four calls of one: worth it
    assert policy.choose(4) == 4


def test_buckets_are_not_explored_beyond_one_that_does_not_clearly_pay():
    policy = BucketPolicy(16)
    feed(policy, 1, 0.768)
    feed(policy, 2, 1.512)  # 1.6% faster per session than batch 1: not worth compiling 4, 8, 16 for
    assert policy.choose(16) == 1
