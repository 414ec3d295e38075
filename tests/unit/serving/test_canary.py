"""The canary judgement: each rule, its boundary, and waiting."""

from __future__ import annotations

import threading

import pytest

from kaizen.serving.canary import CanaryPolicy, VariantStats, judge

POLICY = CanaryPolicy(min_requests=100, min_feedback=20, early_rollback_errors=5)


def stats(
    requests: int,
    errors: int = 0,
    latency: float = 0.010,
    *,
    correct: int = 0,
    labelled: int = 0,
) -> VariantStats:
    """A record of ``requests`` requests, ``errors`` of them failed, the rest at ``latency``."""
    record = VariantStats()
    for _ in range(requests - errors):
        record.record_success(latency)
    for _ in range(errors):
        record.record_error()
    for index in range(labelled):
        record.record_feedback(index < correct)
    return record


def test_a_healthy_challenger_is_promoted_once_both_have_min_requests() -> None:
    decision = judge(stats(100, errors=1), stats(100, errors=1), POLICY)

    assert decision.action == "promote"
    assert decision.rule == "passed"
    assert "100 requests" in decision.reason
    assert "1.00% (1 of 100)" in decision.reason


@pytest.mark.parametrize(("champion", "challenger"), [(99, 100), (100, 99), (0, 0)])
def test_it_waits_until_each_variant_has_min_requests(champion: int, challenger: int) -> None:
    decision = judge(stats(champion), stats(challenger), POLICY)

    assert decision.action == "wait"
    assert f"champion has {champion}, challenger {challenger}" in decision.reason


def test_an_error_rate_more_than_the_allowed_increase_above_the_champions_rolls_back() -> None:
    # 1% vs 3%: two points more, the policy allows one.
    decision = judge(stats(100, errors=1), stats(100, errors=3), POLICY)

    assert decision.action == "rollback"
    assert decision.rule == "error_rate"
    assert "3.00% (3 of 100)" in decision.reason
    assert "1.00% (1 of 100)" in decision.reason
    assert "more than the allowed 1.00%" in decision.reason


def test_an_error_rate_exactly_at_the_allowed_increase_passes() -> None:
    # 1% vs 2% is exactly one point more: at the limit, not over it.
    decision = judge(stats(100, errors=1), stats(100, errors=2), POLICY)

    assert decision.action == "promote"


def test_a_failing_challenger_is_rolled_back_early_after_enough_errors() -> None:
    champion = stats(30)

    before = judge(champion, stats(4, errors=4), POLICY)
    after = judge(champion, stats(5, errors=5), POLICY)

    assert before.action == "wait"
    assert after.action == "rollback"
    assert after.rule == "early_errors"
    assert "100.00% (5 of 5)" in after.reason
    assert "early rollback at 5" in after.reason


def test_enough_errors_at_a_rate_like_the_champions_do_not_roll_back_early() -> None:
    # 5 errors in 90 requests (5.6%) against a champion at 5% is within the allowed point.
    decision = judge(stats(80, errors=4), stats(90, errors=5), POLICY)

    assert decision.action == "wait"


def test_a_p95_above_ratio_times_the_champions_plus_slack_rolls_back() -> None:
    # limit = 10 ms * 1.5 + 5 ms = 20 ms
    decision = judge(stats(100, latency=0.010), stats(100, latency=0.021), POLICY)

    assert decision.action == "rollback"
    assert decision.rule == "latency"
    assert "p95 21.0 ms vs champion 10.0 ms (limit 20.0 ms)" in decision.reason


def test_a_p95_exactly_at_the_limit_passes() -> None:
    decision = judge(stats(100, latency=0.010), stats(100, latency=0.020), POLICY)

    assert decision.action == "promote"


def test_microsecond_latencies_do_not_fail_a_canary_thanks_to_the_slack() -> None:
    # Three times slower, but 0.3 ms vs 0.1 ms is noise nobody would notice.
    decision = judge(stats(100, latency=0.0001), stats(100, latency=0.0003), POLICY)

    assert decision.action == "promote"


def test_p95_ignores_the_slowest_five_percent() -> None:
    challenger = stats(95, latency=0.010)
    for _ in range(5):
        challenger.record_success(1.0)

    assert challenger.p95() == pytest.approx(0.010)
    assert judge(stats(100), challenger, POLICY).action == "promote"
    challenger.record_success(1.0)  # now 6 of 101 are slow: the p95 is slow
    assert challenger.p95() == pytest.approx(1.0)
    assert judge(stats(100), challenger, POLICY).action == "rollback"


def test_an_accuracy_drop_beyond_the_limit_rolls_back_once_both_have_enough_feedback() -> None:
    champion = stats(100, correct=19, labelled=20)  # 95%
    challenger = stats(100, correct=18, labelled=20)  # 90%: 5 points lower, 2 allowed

    decision = judge(champion, challenger, POLICY)

    assert decision.action == "rollback"
    assert decision.rule == "accuracy"
    assert "accuracy 90.00% (18 of 20) vs champion 95.00% (19 of 20)" in decision.reason


def test_accuracy_is_not_compared_until_both_variants_have_min_feedback() -> None:
    champion = stats(100, correct=20, labelled=20)
    challenger = stats(100, correct=0, labelled=19)  # all wrong, but too few labels

    decision = judge(champion, challenger, POLICY)

    assert decision.action == "promote"
    assert "accuracy not compared" in decision.reason


def test_an_accuracy_drop_exactly_at_the_limit_passes() -> None:
    policy = CanaryPolicy(min_requests=10, min_feedback=50, max_accuracy_drop=0.02)

    decision = judge(stats(10, correct=50, labelled=50), stats(10, correct=49, labelled=50), policy)

    assert decision.action == "promote"
    assert "accuracy 98.00% (49 of 50) vs champion 100.00% (50 of 50)" in decision.reason


def test_rules_apply_in_order_error_rate_before_latency() -> None:
    # 3 errors stay below the early-rollback count, so the full judgement decides.
    decision = judge(stats(100), stats(100, errors=3, latency=1.0), POLICY)

    assert decision.rule == "error_rate"


def test_latency_memory_is_bounded_to_the_window() -> None:
    record = VariantStats(latency_window=10)
    for _ in range(1000):
        record.record_success(1.0)
    for _ in range(10):
        record.record_success(0.001)

    assert record.requests == 1010
    assert record.p95() == pytest.approx(0.001)


def test_stats_count_correctly_under_concurrent_updates() -> None:
    record = VariantStats()

    def hammer() -> None:
        for _ in range(2000):
            record.record_success(0.001)
            record.record_error()

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert (record.requests, record.errors) == (16000, 8000)
    assert record.error_rate == pytest.approx(0.5)


def test_an_empty_record_has_no_p95_no_accuracy_and_no_error_rate() -> None:
    record = VariantStats()

    assert (record.p95(), record.accuracy, record.error_rate) == (None, None, 0.0)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("share", 0.0, "share must be within (0, 1) exclusive, got 0.0"),
        ("share", 1.0, "share must be within (0, 1) exclusive, got 1.0"),
        ("share", float("nan"), "share must be within (0, 1)"),
        ("min_requests", 0, "min_requests must be an integer >= 1, got 0"),
        ("min_requests", 2.5, "min_requests must be an integer >= 1, got 2.5"),
        ("max_error_rate_increase", -0.1, "max_error_rate_increase must be within [0, 1]"),
        ("max_p95_ratio", 0.5, "max_p95_ratio must be a number >= 1, got 0.5"),
        ("p95_slack_seconds", -1, "p95_slack_seconds must be a number >= 0, got -1"),
        ("min_feedback", 0, "min_feedback must be an integer >= 1"),
        ("max_accuracy_drop", 2, "max_accuracy_drop must be within [0, 1], got 2"),
        ("early_rollback_errors", True, "early_rollback_errors must be an integer >= 1"),
    ],
)
def test_a_policy_out_of_range_is_refused_naming_the_field(
    field: str, value: object, message: str
) -> None:
    with pytest.raises(ValueError, match="invalid canary policy") as error:
        CanaryPolicy(**{field: value})  # type: ignore[arg-type]

    assert message in str(error.value)
