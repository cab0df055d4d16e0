//! When an entry fires: cron expressions (5 or 6 fields, `@hourly`-style shorthands)
//! read in a named time zone, or `@every <duration>`.

use chrono::{DateTime, TimeZone as _, Utc};
use chrono_tz::Tz;

/// A parsed `cron:` value.
#[derive(Debug, Clone)]
pub(crate) enum Spec {
    /// A cron expression in a time zone.
    Cron {
        /// The expression.
        cron: Box<croner::Cron>,
        /// Where it is read.
        zone: Tz,
    },
    /// `@every D`: at whole multiples of D since the Unix epoch.
    Every(std::time::Duration),
}

/// Parse a time zone name (`UTC`, `Europe/Berlin`).
pub(crate) fn zone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        format!("unknown time zone `{name}`; expected an IANA name like `Europe/Berlin` or `UTC`")
    })
}

/// Parse a `cron:` value.
pub(crate) fn parse(text: &str, zone: Tz) -> Result<Spec, String> {
    let trimmed = text.trim();
    if let Some(rest) = trimmed.strip_prefix("@every") {
        let rest = rest.trim();
        let every = crate::model::duration::parse_duration(rest).map_err(|e| format!("`@every`: {e}"))?;
        if every.get() < std::time::Duration::from_secs(1) {
            return Err(format!("`@every {rest}` is shorter than one second"));
        }
        return Ok(Spec::Every(every.get()));
    }
    if !trimmed.starts_with('@') {
        let fields = trimmed.split_whitespace().count();
        if fields != 5 && fields != 6 {
            return Err(format!(
                "cron expression `{trimmed}` has {fields} field{}; expected 5 (minute hour day month weekday) or 6 (seconds first)",
                if fields == 1 { "" } else { "s" }
            ));
        }
    }
    let parser = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .year(croner::parser::Year::Disallowed)
        .build();
    match parser.parse(trimmed) {
        Ok(cron) => {
            // A pattern that never matches (e.g. 30 February) is an error, not a silent no-op.
            let probe = Utc.timestamp_opt(0, 0).single().unwrap_or_default().with_timezone(&zone);
            if cron.find_next_occurrence(&probe, false).is_err() {
                return Err(format!("cron expression `{trimmed}` never fires"));
            }
            Ok(Spec::Cron { cron: Box::new(cron), zone })
        }
        Err(e) => Err(format!("invalid cron expression `{trimmed}`: {e}")),
    }
}

impl Spec {
    /// The first fire time strictly after `after`.
    pub(crate) fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Spec::Every(every) => {
                let step = i64::try_from(every.as_millis()).ok().filter(|s| *s > 0)?;
                let now = after.timestamp_millis();
                let next = now.div_euclid(step).checked_add(1)?.checked_mul(step)?;
                Utc.timestamp_millis_opt(next).single()
            }
            Spec::Cron { cron, zone } => cron
                .find_next_occurrence(&after.with_timezone(zone), false)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
        }
    }

    /// The time zone fire times are shown in.
    pub(crate) fn zone(&self) -> Tz {
        match self {
            Spec::Cron { zone, .. } => *zone,
            Spec::Every(_) => Tz::UTC,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("time").with_timezone(&Utc)
    }

    fn fires(spec: &Spec, from: &str, n: usize) -> Vec<String> {
        let mut t = at(from);
        let mut out = Vec::new();
        for _ in 0..n {
            t = spec.next_after(t).expect("next");
            out.push(t.to_rfc3339());
        }
        out
    }

    #[test]
    fn five_and_six_fields_shorthands_and_every() {
        let utc = Tz::UTC;
        let five = parse("*/5 * * * *", utc).expect("5 fields");
        assert_eq!(
            fires(&five, "2026-12-01T10:03:00Z", 2),
            ["2026-12-01T10:05:00+00:00", "2026-12-01T10:10:00+00:00"]
        );
        let six = parse("30 0 * * * *", utc).expect("6 fields");
        assert_eq!(fires(&six, "2026-12-01T10:03:00Z", 1), ["2026-12-01T11:00:30+00:00"]);
        let hourly = parse("@hourly", utc).expect("shorthand");
        assert_eq!(fires(&hourly, "2026-12-01T10:03:00Z", 1), ["2026-12-01T11:00:00+00:00"]);
        let every = parse("@every 5m", utc).expect("every");
        assert_eq!(fires(&every, "2026-12-01T10:03:00Z", 1), ["2026-12-01T10:05:00+00:00"]);
        for bad in
            ["* * * *", "* * * * * * *", "61 * * * *", "@every 0s", "@every 10ms", "@sometimes", "0 0 30 2 *"]
        {
            assert!(parse(bad, utc).is_err(), "{bad} should be refused");
        }
        assert!(zone("Europe/Berlin").is_ok() && zone("Mars/Olympus").is_err());
    }

    #[test]
    fn hourly_across_dst_in_berlin_neither_doubles_nor_loses_an_hour() {
        let berlin = zone("Europe/Berlin").expect("zone");
        let hourly = parse("0 * * * *", berlin).expect("hourly");
        // Fall back (2026-10-25 03:00 CEST -> 02:00 CET): every real hour fires once.
        let fall = fires(&hourly, "2026-10-24T22:30:00Z", 5);
        assert_eq!(
            fall,
            [
                "2026-10-24T23:00:00+00:00",
                "2026-10-25T00:00:00+00:00",
                "2026-10-25T01:00:00+00:00",
                "2026-10-25T02:00:00+00:00",
                "2026-10-25T03:00:00+00:00"
            ]
        );
        // Spring forward (2026-03-29 02:00 CET -> 03:00 CEST): one hour fewer, no gap in real time.
        let spring = fires(&hourly, "2026-03-28T23:30:00Z", 3);
        assert_eq!(
            spring,
            ["2026-03-29T00:00:00+00:00", "2026-03-29T01:00:00+00:00", "2026-03-29T02:00:00+00:00"]
        );
        // A daily job at 02:30 runs once on both days: after the gap in spring, at the
        // first 02:30 in autumn.
        let daily = parse("30 2 * * *", berlin).expect("daily");
        assert_eq!(fires(&daily, "2026-03-28T12:00:00Z", 1), ["2026-03-29T01:00:00+00:00"]);
        assert_eq!(
            fires(&daily, "2026-10-24T12:00:00Z", 2),
            ["2026-10-25T00:30:00+00:00", "2026-10-26T01:30:00+00:00"]
        );
    }
}
