"""The hybrid logical clock (`accord.hlc`), as a pure function of its last stamp, the
wall clock and the sources' change times."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from accord.hlc import LOGICAL_LIMIT, ZERO, Clock, Received, Stamp, was_clamped

SKEW = 5 * 60 * 1000
NOW = 1_760_000_000_000


def _clock(last: Stamp = ZERO, wall: list[int] | None = None) -> Clock:
    times = iter(wall) if wall is not None else None
    return Clock(last, max_skew_ms=SKEW, wall=(lambda: next(times)) if times else lambda: NOW)


def test_stamps_take_the_wall_clock_and_count_within_a_millisecond() -> None:
    clock = _clock()
    stamps = [clock.receive().stamp for _ in range(3)]
    assert stamps == [Stamp(NOW, 0), Stamp(NOW, 1), Stamp(NOW, 2)]


def test_a_wall_clock_going_back_never_takes_the_stamps_back() -> None:
    clock = _clock(wall=[NOW, NOW - 10_000, NOW + 5])
    stamps = [clock.receive().stamp for _ in range(3)]
    assert stamps == [Stamp(NOW, 0), Stamp(NOW, 1), Stamp(NOW + 5, 0)]


def test_a_restarted_clock_goes_on_after_its_last_stamp() -> None:
    clock = _clock(last=Stamp(NOW + 1000, 7))
    assert clock.receive().stamp == Stamp(NOW + 1000, 8)


def test_a_source_change_time_ahead_of_the_wall_clock_is_followed_within_the_skew() -> None:
    clock = _clock()
    ahead = clock.receive(NOW + 60_000)
    assert ahead == Received(Stamp(NOW + 60_000, 0), clamped=False)
    # the next record, from a source with a sane clock, is stamped after it
    assert clock.receive(NOW - 5).stamp == Stamp(NOW + 60_000, 1)


def test_a_source_far_in_the_future_is_clamped_to_the_skew() -> None:
    clock = _clock()
    year_ahead = NOW + 365 * 24 * 3600 * 1000
    received = clock.receive(year_ahead)
    assert received.clamped
    assert received.stamp == Stamp(NOW + SKEW, 0)
    assert was_clamped(received.stamp, year_ahead)
    assert not was_clamped(received.stamp, NOW)
    # once the wall clock passes the clamp, other sources' records come after it
    later = Clock(received.stamp, max_skew_ms=SKEW, wall=lambda: NOW + SKEW + 1)
    assert later.receive().stamp > received.stamp


def test_a_source_in_the_past_never_moves_the_clock() -> None:
    clock = _clock()
    assert clock.receive(NOW - 86_400_000) == Received(Stamp(NOW, 0), clamped=False)


def test_the_logical_counter_borrows_the_next_millisecond_when_full() -> None:
    clock = _clock(last=Stamp(NOW, LOGICAL_LIMIT - 1))
    assert clock.receive().stamp == Stamp(NOW + 1, 0)


@given(
    wall=st.lists(st.integers(NOW - 10**6, NOW + 10**6), min_size=1, max_size=50),
    sources=st.lists(st.none() | st.integers(0, NOW + 10**9), min_size=50, max_size=50),
)
def test_stamps_only_grow_and_are_never_behind_a_plausible_source_time(
    wall: list[int], sources: list[int | None]
) -> None:
    times = wall + [wall[-1]] * (len(sources) - len(wall))
    clock = _clock(wall=times)
    previous = Stamp(0)
    for now, source in zip(times, sources, strict=False):
        received = clock.receive(source)
        assert received.stamp > previous
        previous = received.stamp
        if source is not None and not received.clamped:
            assert received.stamp.physical >= source
        if received.clamped:
            assert source is not None and source > now + SKEW


@given(st.tuples(st.integers(0, 10**14), st.integers(0, LOGICAL_LIMIT - 1)), st.data())
def test_text_and_packed_forms_sort_as_the_stamps_do(
    first: tuple[int, int], data: st.DataObject
) -> None:
    a = Stamp(*first)
    b = Stamp(data.draw(st.integers(0, 10**14)), data.draw(st.integers(0, LOGICAL_LIMIT - 1)))
    assert (a < b) == (a.text() < b.text()) == (a.packed() < b.packed())
    assert Stamp.parse(a.text()) == a == Stamp.unpack(a.packed())
    assert len(a.text()) == len(b.text())


@given(
    last=st.tuples(st.integers(NOW - 10**6, NOW + 10**6), st.integers(0, LOGICAL_LIMIT - 1)),
    wall=st.lists(st.integers(NOW - 10**6, NOW + 10**6), min_size=60, max_size=60),
    sources=st.lists(st.none() | st.integers(0, NOW + 10**9), min_size=1, max_size=60),
)
def test_texts_are_the_stamps_received_one_at_a_time(
    last: tuple[int, int], wall: list[int], sources: list[int | None]
) -> None:
    one_by_one = _clock(last=Stamp(*last), wall=wall)
    all_at_once = _clock(last=Stamp(*last), wall=wall)
    expected = [one_by_one.receive(source).stamp.text() for source in sources]
    assert all_at_once.texts(sources) == expected
    assert all_at_once.last == one_by_one.last
