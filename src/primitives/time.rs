//! `time::` — dates and durations for cleanup and check procedures, so no runbook does its
//! own date arithmetic: parse RFC 3339 (and the plan's `YYYYmmdd_HHMMSS` backup stamps),
//! durations such as `7d` or `1h30m`, the age of a file or of a registry timestamp, and
//! comparisons. Times are whole seconds since 1970 (UTC) as integers, so they compare and
//! subtract with the ordinary operators; `time::format` turns one back into RFC 3339.
//!
//! Nothing here changes anything; file ages are read through the workspace, so in a dry
//! run a file the run would have written is as young as the run.

use super::{Family, RhaiResult};
use crate::context::{Ctx, RunContext};
use crate::error::{Error, Result};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use rhai::NativeCallContext;

/// Parse a time: RFC 3339 (`2026-12-01T10:00:00Z`, any offset), `YYYY-mm-dd HH:MM:SS` and
/// `YYYY-mm-dd` (UTC), or the plan's backup stamp `YYYYmmdd_HHMMSS` (UTC).
pub fn parse(text: &str) -> Result<i64> {
    let t = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.timestamp());
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y%m%d_%H%M%S"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(t, format) {
            return Ok(Utc.from_utc_datetime(&d).timestamp());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(Utc
            .from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
            .timestamp());
    }
    Err(Error::invalid(
        "time::parse",
        format!("`{t}` is not a time; write RFC 3339 such as `2026-12-01T10:00:00Z`, `2026-12-01 10:00:00` (UTC) or a backup stamp such as `20261201_100000`"),
    ))
}

/// Parse a duration: one or more `<number><unit>` with unit `s`, `m`, `h`, `d` or `w`
/// (`90s`, `12h`, `7d`, `1h30m`); a bare number is seconds.
pub fn duration(text: &str) -> Result<i64> {
    let t = text.trim();
    let bad = || {
        Error::invalid(
            "time::duration",
            format!(
                "`{t}` is not a duration; write it like `90s`, `30m`, `12h`, `7d`, `2w` or `1h30m`"
            ),
        )
    };
    if let Ok(n) = t.parse::<i64>() {
        return if n >= 0 { Ok(n) } else { Err(bad()) };
    }
    let mut total: i64 = 0;
    let mut number = String::new();
    for ch in t.chars() {
        if ch.is_ascii_digit() {
            number.push(ch);
            continue;
        }
        let unit = match ch {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        let n: i64 = number.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() || t.is_empty() {
        return Err(bad());
    }
    Ok(total)
}

/// A number of seconds as people read it: `3d 4h`, `12m 5s`, `0s`.
pub fn describe(secs: i64) -> String {
    let sign = if secs < 0 { "-" } else { "" };
    let mut left = secs.unsigned_abs();
    let mut parts = Vec::new();
    for (unit, name) in [(86_400u64, "d"), (3600, "h"), (60, "m"), (1, "s")] {
        if left >= unit {
            parts.push(format!("{}{name}", left / unit));
            left %= unit;
        }
        if parts.len() == 2 {
            break;
        }
    }
    if parts.is_empty() {
        return "0s".into();
    }
    format!("{sign}{}", parts.join(" "))
}

pub fn format(secs: i64) -> Result<String> {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .ok_or_else(|| Error::invalid("time::format", format!("{secs} is out of range")))
}

fn now() -> i64 {
    Utc::now().timestamp()
}

/// Seconds since `path` (a file or directory in the workspace) was last modified.
fn age(ctx: &RunContext, path: &str) -> Result<i64> {
    let rel = ctx.ws.resolve(path)?;
    let mtime = ctx.ws.mtime(&rel)?;
    let secs = match mtime.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    Ok(now() - secs)
}

pub fn family(ctx: &Ctx) -> Family {
    let mut f = Family::new(
        "time",
        "Times (whole seconds since 1970, UTC, as integers) and durations; reads only.",
    );
    f.add(
        "parse",
        &["text: &str", "int"],
        "Parse a time: RFC 3339 (`2026-12-01T10:00:00Z`, any offset), `YYYY-mm-dd HH:MM:SS` or `YYYY-mm-dd` (UTC), or a backup stamp `YYYYmmdd_HHMMSS` (UTC, as in `backup_timestamp.txt`). Returns seconds since 1970.\n```rhai\nlet t = time::parse(\"2026-12-01T10:00:00Z\");\nassert(t < time::now(), \"that is in the future\");\n```",
        |text: &str| -> RhaiResult<i64> { parse(text).map_err(|e| e.to_string().into()) },
    );
    f.add(
        "format",
        &["secs: int", "String"],
        "A time as RFC 3339 UTC (`2026-12-01T10:00:00Z`).\n```rhai\nprint(time::format(time::now() - time::duration(\"7d\")));\n```",
        |secs: i64| -> RhaiResult<String> { format(secs).map_err(|e| e.to_string().into()) },
    );
    f.add(
        "now",
        &["int"],
        "The current time, in seconds since 1970.\n```rhai\nlet t = time::now();\n```",
        now,
    );
    let c = ctx.clone();
    f.add(
        "started",
        &["int"],
        "When the run started, in seconds since 1970 (the moment `timestamp()` names).\n```rhai\nprint(time::format(time::started()));\n```",
        move || c.started().timestamp(),
    );
    f.add(
        "duration",
        &["text: &str", "int"],
        "A duration in seconds: `90s`, `30m`, `12h`, `7d`, `2w`, `1h30m`; a bare number is seconds.\n```rhai\nassert(time::duration(\"1h30m\") == 5400, \"ninety minutes\");\n```",
        |text: &str| -> RhaiResult<i64> { duration(text).map_err(|e| e.to_string().into()) },
    );
    f.add(
        "describe",
        &["secs: int", "String"],
        "A number of seconds as people read it, to two units: `3d 4h`, `12m 5s`.\n```rhai\nprint(`the backup is ${time::describe(time::age(\"backup_timestamp.txt\"))} old`);\n```",
        describe,
    );
    let c = ctx.clone();
    f.add(
        "age",
        &["path: &str", "int"],
        "Seconds since a workspace file or directory was last modified (as the run sees it: a file a dry run would have written is new).\n```rhai\nif time::age(\"backup_timestamp.txt\") > time::duration(\"7d\") { print(\"the backup is over a week old\"); }\n```",
        move |call: NativeCallContext, path: &str| -> RhaiResult<i64> {
            age(&c, path).map_err(|e| c.fail_at(&call, e))
        },
    );
    f.add(
        "since",
        &["timestamp: &str", "int"],
        "Seconds from a timestamp (any form `time::parse` reads, such as a registry entry's `promoted_at`) until now.\n```rhai\nlet prod = registry::production(\"sl_forecaster\");\nprint(`in production for ${time::describe(time::since(prod.promoted_at))}`);\n```",
        |timestamp: &str| -> RhaiResult<i64> {
            parse(timestamp).map(|t| now() - t).map_err(|e| e.to_string().into())
        },
    );
    f.add(
        "older_than",
        &["timestamp: &str", "duration: &str", "bool"],
        "Whether a timestamp lies more than a duration in the past.\n```rhai\nfor e in registry::versions(\"sl_forecaster\") {\n    if e.status == \"archived\" && time::older_than(e.created_at, \"30d\") { print(`${e.version} is old`); }\n}\n```",
        |timestamp: &str, duration_text: &str| -> RhaiResult<bool> {
            let t = parse(timestamp).map_err(|e| e.to_string())?;
            let d = duration(duration_text).map_err(|e| e.to_string())?;
            Ok(now() - t > d)
        },
    );
    f.add(
        "is_before",
        &["a: &str", "b: &str", "bool"],
        "Whether time `a` is earlier than time `b` (both in any form `time::parse` reads, offsets honoured).\n```rhai\nassert(time::is_before(\"2026-11-30T23:00:00-02:00\", \"2026-12-01T02:00:00Z\"), \"offsets count\");\n```",
        |a: &str, b: &str| -> RhaiResult<bool> {
            Ok(parse(a).map_err(|e| e.to_string())? < parse(b).map_err(|e| e.to_string())?)
        },
    );
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_times_in_every_form() {
        assert_eq!(parse("1970-01-01T00:00:10Z").unwrap(), 10);
        assert_eq!(parse("1970-01-01T01:00:10+01:00").unwrap(), 10);
        assert_eq!(parse("1970-01-01 00:00:10").unwrap(), 10);
        assert_eq!(parse("19700101_000010").unwrap(), 10);
        assert_eq!(parse("1970-01-02").unwrap(), 86_400);
        let e = parse("yesterday").unwrap_err().to_string();
        assert!(e.contains("`yesterday` is not a time"), "{e}");
    }

    #[test]
    fn durations_and_descriptions() {
        assert_eq!(duration("7d").unwrap(), 7 * 86_400);
        assert_eq!(duration("12h").unwrap(), 43_200);
        assert_eq!(duration("1h30m").unwrap(), 5_400);
        assert_eq!(duration("2w").unwrap(), 14 * 86_400);
        assert_eq!(duration("45").unwrap(), 45);
        for bad in ["", "7x", "d", "1h3", "-5"] {
            assert!(duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(describe(0), "0s");
        assert_eq!(describe(3 * 86_400 + 4 * 3600 + 5), "3d 4h");
        assert_eq!(describe(-65), "-1m 5s");
        assert_eq!(format(10).unwrap(), "1970-01-01T00:00:10Z");
    }
}
