//! Which backups a schedule keeps: the newest of each of the last
//! `daily` days that have one, and the newest of each of the last
//! `weekly` ISO weeks that have one (the seeds' 7 daily and 4 weekly);
//! a backup may count as both.

use std::collections::HashSet;

use chrono::{DateTime, Datelike, Utc};

/// The indexes in `times` of the backups to keep.
pub fn keep(times: &[DateTime<Utc>], daily: usize, weekly: usize) -> HashSet<usize> {
    let mut newest_first: Vec<usize> = (0..times.len()).collect();
    newest_first.sort_by_key(|i| std::cmp::Reverse(times[*i]));
    let mut kept = HashSet::new();
    let (mut days, mut weeks) = (HashSet::new(), HashSet::new());
    for i in newest_first {
        let day = times[i].date_naive();
        if days.len() < daily && days.insert(day) {
            kept.insert(i);
        }
        let week = times[i].iso_week();
        if weeks.len() < weekly && weeks.insert((week.year(), week.week())) {
            kept.insert(i);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use chrono::{Duration, TimeZone};

    use super::*;

    #[test]
    fn daily_backups_for_two_months_keep_seven_days_and_four_weeks() {
        // Sunday 2026-11-29, 03:00, and the 59 days before it.
        let last = Utc.with_ymd_and_hms(2026, 11, 29, 3, 0, 0).unwrap();
        let times: Vec<_> = (0..60).map(|d| last - Duration::days(d)).collect();
        let kept = keep(&times, 7, 4);
        let mut days: Vec<i64> = kept.iter().map(|i| (last - times[*i]).num_days()).collect();
        days.sort_unstable();
        // The last 7 days (one a Monday that starts its week), then the
        // Sundays ending the 3 weeks before.
        assert_eq!(days, vec![0, 1, 2, 3, 4, 5, 6, 7, 14, 21]);
    }

    #[test]
    fn several_a_day_keep_the_newest_of_each_and_none_is_kept_twice() {
        let day = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let times = vec![
            day + Duration::hours(3),
            day + Duration::hours(15),
            day + Duration::hours(9),
        ];
        assert_eq!(keep(&times, 7, 4), HashSet::from([1]));
        assert!(keep(&times, 0, 0).is_empty());
        assert!(keep(&[], 7, 4).is_empty());
    }
}
