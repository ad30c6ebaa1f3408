import itertools
from datetime import UTC, datetime, timedelta

from spendgate.domain.periods import day_bounds, local_days, month_bounds


def test_month_in_the_orgs_time_zone() -> None:
    start, end = month_bounds(datetime(2026, 11, 30, 20, 0, tzinfo=UTC), "Asia/Shanghai")
    # 20:00 UTC on Nov 30 is already Dec 1 in Shanghai (UTC+8).
    assert start == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    assert end == datetime(2026, 12, 31, 16, 0, tzinfo=UTC)


def test_december_rolls_into_january() -> None:
    start, end = month_bounds(datetime(2026, 12, 15, tzinfo=UTC), "UTC")
    assert (start, end) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


def test_dst_days_are_23_and_25_hours() -> None:
    spring = day_bounds(datetime(2026, 3, 8, 12, tzinfo=UTC), "America/New_York")
    autumn = day_bounds(datetime(2026, 11, 1, 12, tzinfo=UTC), "America/New_York")
    assert spring[1] - spring[0] == timedelta(hours=23)
    assert autumn[1] - autumn[0] == timedelta(hours=25)


def test_local_days_cover_the_range_without_gaps() -> None:
    start, end = datetime(2026, 11, 3, 5, tzinfo=UTC), datetime(2026, 11, 6, 2, tzinfo=UTC)
    days = local_days(start, end, "Asia/Shanghai")
    assert days[0][0] == start and days[-1][1] == end
    assert all(a[1] == b[0] for a, b in itertools.pairwise(days))
