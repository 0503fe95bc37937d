"""Spike detection is pure: per-minute counts in, spikes out."""

from __future__ import annotations

import pytest

from bot.logs.spikes import MinuteCounts, SpikeConfig, detect_spikes, worst

T0 = 1_709_640_000  # a minute boundary


def flat(minutes: int, requests: int = 100, errors: int = 1, start: int = 0) -> list[MinuteCounts]:
    return [MinuteCounts(T0 + 60 * (start + i), requests, errors, {500: errors}) for i in range(minutes)]


def with_spike(at: int, length: int, errors: int, *, total: int = 60) -> list[MinuteCounts]:
    minutes = flat(total)
    for i in range(at, at + length):
        minutes[i] = MinuteCounts(T0 + 60 * i, 100, errors, {502: errors - 10, 504: 10})
    return minutes


def test_flat_traffic_has_no_spike() -> None:
    assert detect_spikes(flat(120)) == []


def test_a_spike_has_start_end_peak_and_codes() -> None:
    [spike] = detect_spikes(with_spike(30, 10, 40))
    assert spike.start == T0 + 30 * 60
    assert spike.end == T0 + 40 * 60
    assert spike.minutes == 10
    assert spike.baseline_rate == pytest.approx(0.01)
    assert spike.peak_rate == pytest.approx(0.4)
    assert spike.peak_ratio == pytest.approx(40.0)
    assert spike.codes == {502: 300, 504: 100}
    assert spike.errors == 400 and spike.requests == 1000


def test_a_long_spike_does_not_become_its_own_baseline() -> None:
    [spike] = detect_spikes(with_spike(10, 45, 30))
    assert spike.minutes == 45


def test_two_spikes_and_the_worst() -> None:
    minutes = with_spike(10, 3, 20)
    minutes[40:45] = with_spike(40, 5, 60)[40:45]
    spikes = detect_spikes(minutes)
    assert [s.minutes for s in spikes] == [3, 5]
    best = worst(spikes)
    assert best is not None and best.start == T0 + 40 * 60


def test_one_quiet_minute_inside_a_spike_is_bridged() -> None:
    minutes = with_spike(20, 6, 40)
    minutes[23] = MinuteCounts(T0 + 23 * 60, 100, 1, {500: 1})
    [spike] = detect_spikes(minutes)
    assert (spike.start, spike.end) == (T0 + 20 * 60, T0 + 26 * 60)
    assert detect_spikes(minutes, SpikeConfig(gap=0)) != [spike]


def test_few_errors_at_low_traffic_are_not_a_spike() -> None:
    minutes = flat(60, requests=3, errors=0)
    minutes[30] = MinuteCounts(T0 + 30 * 60, 3, 2, {502: 2})  # 67 % but two errors
    assert detect_spikes(minutes) == []


def test_a_spike_at_the_start_uses_the_whole_log_median() -> None:
    [spike] = detect_spikes(with_spike(0, 4, 50))
    assert spike.start == T0
    assert spike.baseline_rate == pytest.approx(0.01)


def test_a_zero_baseline_gives_a_finite_ratio() -> None:
    minutes = flat(60, errors=0)
    minutes[30] = MinuteCounts(T0 + 30 * 60, 100, 20, {503: 20})
    [spike] = detect_spikes(minutes)
    assert spike.peak_ratio == pytest.approx(0.2 / SpikeConfig().baseline_floor)


def test_unsorted_input_and_gaps_in_time() -> None:
    minutes = with_spike(30, 5, 40)
    shuffled = minutes[::-1]
    assert detect_spikes(shuffled) == detect_spikes(minutes)
    late = [*flat(30), *flat(30, start=300)]  # five hours of silence in between
    assert detect_spikes(late) == []
