//! Calendar dates for the programme: when points expire on a fixed date, when a review falls, whose
//! birthday is today, and how a date reads in a ledger reason. The programme runs on UTC days; a
//! retailer in another zone sees its day boundaries shifted by its offset (see docs/programme.md).

use time::{Date, Month, OffsetDateTime};

pub const DAY_MS: i64 = 86_400_000;

fn datetime(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The UTC date of an instant.
pub fn date_of(ms: i64) -> Date {
    datetime(ms).date()
}

/// Midnight UTC at the start of `date`, in milliseconds.
fn start_of(date: Date) -> i64 {
    let secs = date.midnight().assume_utc().unix_timestamp();
    secs.saturating_mul(1000)
}

/// `2027-12-31`: how dates read in ledger reasons and messages.
pub fn format_date(ms: i64) -> String {
    let d = date_of(ms);
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// `2027-12-31 23:59:59 UTC`: how times read for people at a terminal.
pub fn format_datetime(ms: i64) -> String {
    let t = datetime(ms);
    format!(
        "{} {:02}:{:02}:{:02} UTC",
        format_date(ms),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The instant `month`/`day` ends in the year `years_after` years after `from`'s year: points
/// earned in 2026 with (12, 31, 1) expire at the end of 2027-12-31. A day that does not exist in
/// that year (29 February) falls back to the month's last day.
pub fn end_of_fixed_date(from_ms: i64, month: u8, day: u8, years_after: i32) -> Option<i64> {
    let year = date_of(from_ms).year().checked_add(years_after)?;
    let month = Month::try_from(month).ok()?;
    let last = month.length(year);
    let date = Date::from_calendar_date(year, month, day.min(last)).ok()?;
    Some(start_of(date.next_day()?))
}

/// A reporting period: UTC days, ISO weeks (from Monday) or calendar months.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Day,
    Week,
    Month,
}

impl Period {
    pub const ALL: [Period; 3] = [Period::Day, Period::Week, Period::Month];

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// Midnight UTC at the start of the period that holds `ms`.
    ///
    /// ```
    /// use loyalty_core::calendar::{Period, DAY_MS};
    /// // 2026-11-28 (a Saturday) 15:00 UTC.
    /// let t = 1_795_878_000_000;
    /// assert_eq!(Period::Day.start_of(t), 1_795_824_000_000);
    /// assert_eq!(Period::Week.start_of(t), 1_795_824_000_000 - 5 * DAY_MS);
    /// assert_eq!(Period::Month.start_of(t), 1_795_824_000_000 - 27 * DAY_MS);
    /// ```
    pub fn start_of(self, ms: i64) -> i64 {
        let date = date_of(ms);
        let first = match self {
            Period::Day => date,
            Period::Week => {
                let back = i64::from(date.weekday().number_days_from_monday());
                date.checked_sub(time::Duration::days(back)).unwrap_or(date)
            }
            Period::Month => date.replace_day(1).unwrap_or(date),
        };
        start_of(first)
    }
}

pub fn is_leap_year(year: i32) -> bool {
    time::util::is_leap_year(year)
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAN_1_2026: i64 = 1_767_225_600_000;

    #[test]
    fn fixed_dates_end_at_the_next_midnight() {
        let mid_2026 = JAN_1_2026 + 180 * DAY_MS;
        let end = end_of_fixed_date(mid_2026, 12, 31, 1).unwrap();
        assert_eq!(format_date(end - 1), "2027-12-31");
        assert_eq!(format_date(end), "2028-01-01");
        assert_eq!(format_datetime(end - 1), "2027-12-31 23:59:59 UTC");
        // 29 February in a year without one.
        let feb = end_of_fixed_date(JAN_1_2026, 2, 29, 1).unwrap();
        assert_eq!(format_date(feb - 1), "2027-02-28");
        assert_eq!(end_of_fixed_date(JAN_1_2026, 13, 1, 1), None);
    }
}
