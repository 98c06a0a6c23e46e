//! Time offsets (SPEC §2): a rule holds before, during or after the owner's assignment period
//! (an account exists disabled a month before arrival, enabled during the contract, ...).

use super::CompiledPolicy;
use crate::error::EvaluationError;
use autoprov_core::{DateBound, LocalTimeZone, Owner, Period, PropertyValue, ScalarValue};
use chrono::{DateTime, TimeDelta, Utc};

/// Where a rule's time window is anchored, relative to the owner's assignment period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[non_exhaustive]
pub enum TimeOffsetReference {
    /// Exactly the assignment period `[start, end)`.
    #[default]
    Default,
    /// The period widened: `[start - before, end + after)`.
    Around,
    /// Around the start: `[start - before, start + after)`. Never holds without a start.
    Before,
    /// Around the end: `[end - before, end + after)`. Never holds without an end.
    After,
}

impl TimeOffsetReference {
    /// Rank among rules of one property that hold at the same time, lowest first: the
    /// reference system's precedence `After` → `Before` → `Around` → `Default`.
    pub fn precedence(self) -> u8 {
        match self {
            Self::After => 0,
            Self::Before => 1,
            Self::Around => 2,
            Self::Default => 3,
        }
    }
}

/// A rule's time window relative to the owner's assignment period (e.g. an account that exists
/// disabled 30 days before arrival: a type rule `Around` with `before = 30 days`, and a scalar
/// rule `Before` with `before = 30 days` setting the disabled flag).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct TimeOffset {
    /// The anchor.
    pub reference: TimeOffsetReference,
    /// How long before the anchor the window opens.
    pub before: TimeDelta,
    /// How long after the anchor the window closes.
    pub after: TimeDelta,
}

impl TimeOffset {
    /// Exactly the assignment period.
    pub const DEFAULT: TimeOffset = TimeOffset {
        reference: TimeOffsetReference::Default,
        before: TimeDelta::zero(),
        after: TimeDelta::zero(),
    };

    /// `[start - before, end + after)`.
    pub fn around(before: TimeDelta, after: TimeDelta) -> Self {
        Self {
            reference: TimeOffsetReference::Around,
            before,
            after,
        }
    }

    /// `[start - before, start + after)`.
    pub fn before_start(before: TimeDelta, after: TimeDelta) -> Self {
        Self {
            reference: TimeOffsetReference::Before,
            before,
            after,
        }
    }

    /// `[end - before, end + after)`.
    pub fn after_end(before: TimeDelta, after: TimeDelta) -> Self {
        Self {
            reference: TimeOffsetReference::After,
            before,
            after,
        }
    }

    /// The window this offset gives for an assignment period, or `None` when it can never hold
    /// (a `Before`/`After` anchor that the period does not have). Offsets are exact durations;
    /// see [`TimeOffset::window_in`] for calendar days in a time zone.
    pub fn window(&self, period: Period) -> Option<Period> {
        self.window_in(period, &LocalTimeZone::UTC)
    }

    /// [`TimeOffset::window`] with offsets of whole days counted as calendar days in `zone`:
    /// "7 days before an arrival at local midnight" opens at local midnight, 7 × 24 h ± 1 h
    /// earlier across a daylight-saving change. Other offsets are exact durations.
    pub fn window_in(&self, period: Period, zone: &LocalTimeZone) -> Option<Period> {
        let shift = |d: Option<DateTime<Utc>>, by: TimeDelta| {
            d.map(|d| {
                if by.num_seconds() % 86_400 == 0 && by.subsec_nanos() == 0 {
                    zone.add_days(d, by.num_days())
                } else {
                    d + by
                }
            })
        };
        match self.reference {
            TimeOffsetReference::Default => Some(period),
            TimeOffsetReference::Around => Some(Period::new(
                shift(period.start, -self.before),
                shift(period.end, self.after),
            )),
            TimeOffsetReference::Before => {
                let start = period.start?;
                Some(Period::new(
                    shift(Some(start), -self.before),
                    shift(Some(start), self.after),
                ))
            }
            TimeOffsetReference::After => {
                let end = period.end?;
                Some(Period::new(
                    shift(Some(end), -self.before),
                    shift(Some(end), self.after),
                ))
            }
        }
    }
}

impl CompiledPolicy {
    pub(super) fn owner_period(&self, owner: &Owner) -> Result<Period, EvaluationError> {
        let Some(p) = &self.owner_period else {
            return Ok(Period::ALWAYS);
        };
        let read = |prop: &Option<String>,
                    bound: DateBound|
         -> Result<Option<DateTime<Utc>>, EvaluationError> {
            let Some(prop) = prop else { return Ok(None) };
            match owner.get(prop) {
                None => Ok(None),
                Some(PropertyValue::Scalar(ScalarValue::String(s))) if s.trim().is_empty() => {
                    Ok(None)
                }
                Some(PropertyValue::Scalar(
                    v @ (ScalarValue::DateTime(_) | ScalarValue::String(_)),
                )) => self.time_zone.read_date(v, bound).map(Some).map_err(|e| {
                    EvaluationError::InvalidOwnerDate {
                        owner: owner.id.clone(),
                        property: prop.clone(),
                        reason: e.to_string(),
                    }
                }),
                Some(other) => Err(EvaluationError::InvalidOwnerProperty {
                    owner: owner.id.clone(),
                    property: prop.clone(),
                    expected: "a date or a date-time",
                    found: other.kind_name(),
                }),
            }
        };
        Ok(Period::new(
            read(&p.start_property, DateBound::Start)?,
            read(&p.end_property, DateBound::End)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, 0, 0, 0).unwrap()
    }

    #[test]
    fn time_offsets_shift_the_period() {
        let p = Period::new(Some(t(10)), Some(t(20)));
        let d = TimeDelta::days(2);
        assert_eq!(TimeOffset::DEFAULT.window(p), Some(p));
        assert_eq!(
            TimeOffset::around(d, d).window(p),
            Some(Period::new(Some(t(8)), Some(t(22))))
        );
        assert_eq!(
            TimeOffset::before_start(d, TimeDelta::zero()).window(p),
            Some(Period::new(Some(t(8)), Some(t(10))))
        );
        assert_eq!(
            TimeOffset::after_end(TimeDelta::zero(), d).window(p),
            Some(Period::new(Some(t(20)), Some(t(22))))
        );
        assert_eq!(TimeOffset::after_end(d, d).window(Period::ALWAYS), None);
    }
}
