//! Dates read in a configured time zone (issue 14; the reference system's dates are local
//! dates): an HR source writes arrival and departure as calendar dates ("2026-03-29"), and
//! that date means a whole day where the person works, daylight-saving changes included.
//!
//! - A date alone is a whole local day: as a start it begins at the day's first instant, as an
//!   (inclusive) end it lasts until the next day's first instant
//!   ([`LocalTimeZone::read_date`]).
//! - A local date-time without offset is read in the zone; one in a daylight-saving gap (02:30
//!   on the spring-forward night in Paris) is moved forward by the gap's length (03:30), one
//!   in the repeated hour of the fall-back night is the earlier of the two instants.
//! - An RFC 3339 date-time with an offset, or a [`ScalarValue::DateTime`], is an instant and is
//!   kept as it is.
//! - Offsets of whole days are calendar days in the zone ([`LocalTimeZone::add_days`]): "7 days
//!   before arrival at midnight" is midnight 7 days earlier, 23 or 25 hours away across a change.
//!
//! ```
//! use autoprov_core::time_zone::{DateBound, LocalTimeZone};
//! use autoprov_core::ScalarValue;
//!
//! let paris: LocalTimeZone = "Europe/Paris".parse().unwrap();
//! // The summer-time change day: the inclusive end date lasts until local midnight (CEST).
//! let end = paris.read_date(&ScalarValue::from("2026-03-29"), DateBound::End).unwrap();
//! assert_eq!(end.to_rfc3339(), "2026-03-29T22:00:00+00:00");
//! ```

use crate::value::ScalarValue;
use chrono::{
    DateTime, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta, TimeZone, Utc,
};
use std::fmt;
use std::str::FromStr;

/// A time zone of the IANA database (`Europe/Paris`, `UTC`), in which dates without an offset
/// are read. Serialized as its name; an unknown name is refused with an error naming it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LocalTimeZone(chrono_tz::Tz);

/// Which side of a period a date is read for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DateBound {
    /// The start: a date alone begins at its first local instant.
    Start,
    /// An inclusive end: a date alone lasts until the next day's first local instant.
    End,
}

/// A value that cannot be read as a date, or an unknown time zone name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeZoneError {
    /// Not a time zone of the IANA database.
    #[error("`{name}` is not a time zone of the IANA database (e.g. `Europe/Paris`, `UTC`)")]
    UnknownTimeZone {
        /// The name given.
        name: String,
    },
    /// Not a date, a local date-time or an RFC 3339 date-time.
    #[error(
        "`{value}` is not a date (`YYYY-MM-DD`), a local date-time (`YYYY-MM-DDTHH:MM[:SS]`) or an RFC 3339 date-time"
    )]
    NotADate {
        /// The value as text.
        value: String,
    },
}

impl LocalTimeZone {
    /// UTC.
    pub const UTC: LocalTimeZone = LocalTimeZone(chrono_tz::UTC);

    /// The zone's IANA name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// The instant a local date-time denotes: in a daylight-saving gap, moved forward by the
    /// gap's length; in a repeated hour, the earlier instant.
    pub fn local_to_utc(&self, local: NaiveDateTime) -> DateTime<Utc> {
        match self.0.from_local_datetime(&local) {
            LocalResult::Single(t) => t.with_timezone(&Utc),
            LocalResult::Ambiguous(a, b) => a.min(b).with_timezone(&Utc),
            LocalResult::None => {
                // The offset in force before the gap, applied to the skipped local time.
                let before = local - TimeDelta::days(1);
                let offset = self
                    .0
                    .offset_from_local_datetime(&before)
                    .earliest()
                    .map(|o| o.fix().local_minus_utc())
                    .unwrap_or(0);
                Utc.from_utc_datetime(&(local - TimeDelta::seconds(i64::from(offset))))
            }
        }
    }

    /// The first instant of a local day.
    pub fn start_of_day(&self, date: NaiveDate) -> DateTime<Utc> {
        self.local_to_utc(date.and_time(NaiveTime::MIN))
    }

    /// `at` moved by `days` calendar days in the zone, keeping its local time of day.
    pub fn add_days(&self, at: DateTime<Utc>, days: i64) -> DateTime<Utc> {
        let local = at.with_timezone(&self.0).naive_local();
        self.local_to_utc(local + TimeDelta::days(days))
    }

    /// Reads a date value for one side of a period (see the module documentation).
    pub fn read_date(
        &self,
        value: &ScalarValue,
        bound: DateBound,
    ) -> Result<DateTime<Utc>, TimeZoneError> {
        let text = match value {
            ScalarValue::DateTime(d) => return Ok(*d),
            ScalarValue::String(s) => s.trim(),
            other => {
                return Err(TimeZoneError::NotADate {
                    value: other.to_string(),
                });
            }
        };
        if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            return Ok(match bound {
                DateBound::Start => self.start_of_day(date),
                DateBound::End => self.start_of_day(date + TimeDelta::days(1)),
            });
        }
        if let Ok(d) = DateTime::parse_from_rfc3339(text) {
            return Ok(d.with_timezone(&Utc));
        }
        for format in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S"] {
            if let Ok(local) = NaiveDateTime::parse_from_str(text, format) {
                return Ok(self.local_to_utc(local));
            }
        }
        Err(TimeZoneError::NotADate {
            value: text.to_owned(),
        })
    }
}

impl Default for LocalTimeZone {
    fn default() -> Self {
        Self::UTC
    }
}

impl FromStr for LocalTimeZone {
    type Err = TimeZoneError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        name.trim()
            .parse::<chrono_tz::Tz>()
            .map(Self)
            .map_err(|_| TimeZoneError::UnknownTimeZone {
                name: name.to_owned(),
            })
    }
}

impl fmt::Display for LocalTimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for LocalTimeZone {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for LocalTimeZone {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// Seconds between 1601-01-01 (the FILETIME epoch) and 1970-01-01.
const FILETIME_EPOCH_OFFSET: i64 = 11_644_473_600;

/// An instant as a Windows FILETIME (100-nanosecond intervals since 1601-01-01 UTC): the unit
/// of Active Directory's `accountExpires`, which holds the first instant the account is
/// expired.
pub fn file_time(at: DateTime<Utc>) -> i64 {
    (at.timestamp() + FILETIME_EPOCH_OFFSET) * 10_000_000
        + i64::from(at.timestamp_subsec_nanos()) / 100
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn read(zone: &LocalTimeZone, text: &str, bound: DateBound) -> DateTime<Utc> {
        zone.read_date(&ScalarValue::from(text), bound).unwrap()
    }

    #[test]
    fn dates_are_whole_local_days_across_daylight_saving_changes() {
        let paris: LocalTimeZone = "Europe/Paris".parse().unwrap();
        // 2026-03-29: summer time starts at 02:00 (CET+1 ⇒ CEST+2); the day has 23 hours.
        let start = read(&paris, "2026-03-29", DateBound::Start);
        let end = read(&paris, "2026-03-29", DateBound::End);
        assert_eq!(start, utc("2026-03-28T23:00:00Z"));
        assert_eq!(end, utc("2026-03-29T22:00:00Z"));
        assert_eq!(end - start, TimeDelta::hours(23));
        // 2026-10-25: winter time again; the day has 25 hours.
        let start = read(&paris, "2026-10-25", DateBound::Start);
        let end = read(&paris, "2026-10-25", DateBound::End);
        assert_eq!(end - start, TimeDelta::hours(25));
        // Without a zone (UTC) the same end date ends two hours later.
        assert_eq!(
            read(&LocalTimeZone::UTC, "2026-03-29", DateBound::End),
            utc("2026-03-30T00:00:00Z")
        );
    }

    #[test]
    fn local_times_in_a_gap_or_a_repeated_hour() {
        let paris: LocalTimeZone = "Europe/Paris".parse().unwrap();
        // 02:30 does not exist on 2026-03-29: moved forward by the gap, to 03:30 CEST.
        assert_eq!(
            read(&paris, "2026-03-29T02:30:00", DateBound::Start),
            utc("2026-03-29T01:30:00Z")
        );
        // 02:30 happens twice on 2026-10-25: the first (CEST).
        assert_eq!(
            read(&paris, "2026-10-25T02:30", DateBound::Start),
            utc("2026-10-25T00:30:00Z")
        );
        // An instant with its offset is kept.
        assert_eq!(
            read(&paris, "2026-03-29T02:30:00+05:00", DateBound::End),
            utc("2026-03-28T21:30:00Z")
        );
        let e = paris
            .read_date(&ScalarValue::from("29/03/2026"), DateBound::End)
            .unwrap_err();
        assert!(e.to_string().contains("29/03/2026"), "{e}");
    }

    #[test]
    fn calendar_days_across_a_change_keep_the_local_time() {
        let paris: LocalTimeZone = "Europe/Paris".parse().unwrap();
        let arrival = read(&paris, "2026-04-01", DateBound::Start);
        let week_before = paris.add_days(arrival, -7);
        assert_eq!(week_before, utc("2026-03-24T23:00:00Z"), "midnight CET");
        assert_eq!(arrival - week_before, TimeDelta::hours(7 * 24 - 1));
    }

    #[test]
    fn names_and_file_times() {
        let e = "Europe/Pariss".parse::<LocalTimeZone>().unwrap_err();
        assert!(e.to_string().contains("`Europe/Pariss`"), "{e}");
        let z: LocalTimeZone = serde_json::from_str("\"America/New_York\"").unwrap();
        assert_eq!(serde_json::to_string(&z).unwrap(), "\"America/New_York\"");
        let e = serde_json::from_str::<LocalTimeZone>("\"Mars/Olympus\"").unwrap_err();
        assert!(e.to_string().contains("Mars/Olympus"), "{e}");
        assert_eq!(file_time(utc("1601-01-01T00:00:00Z")), 0);
        assert_eq!(
            file_time(utc("1970-01-01T00:00:00Z")),
            116_444_736_000_000_000
        );
        assert_eq!(
            file_time(utc("2026-03-29T22:00:00Z")),
            (1_774_821_600 + 11_644_473_600) * 10_000_000
        );
    }
}
