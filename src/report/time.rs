//! Report times: ISO 8601 in UTC with milliseconds (`2026-01-01T00:00:03.048Z`), the form people
//! read in every CSV and Markdown report, and the parsing that reads it back (and the epoch
//! seconds of schema 2 reports and of Zeek logs).
//!
//! No date crate: the civil calendar conversion is Howard Hinnant's `days_from_civil` /
//! `civil_from_days` (public domain), a few lines of integer arithmetic, and formatting must stay
//! cheap enough for a million flows.csv rows.

/// Nanoseconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`, cut (not rounded) to the
/// millisecond, as tcpdump cuts its fractions: a packet at .0489999 shows .048.
pub fn format_iso(ts_ns: i64) -> String {
    let mut buf = Vec::with_capacity(24);
    push_iso(&mut buf, ts_ns);
    String::from_utf8(buf).expect("digits and ASCII separators")
}

/// Appends [`format_iso`]'s text (no `fmt`: flows.csv writes two per row).
pub fn push_iso(buf: &mut Vec<u8>, ts_ns: i64) {
    let ms = ts_ns.div_euclid(1_000_000);
    let secs = ms.div_euclid(1000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    // i64 nanoseconds span the years 1677 to 2262: always four digits.
    push_digits(buf, y as u32, 4);
    buf.push(b'-');
    push_digits(buf, m, 2);
    buf.push(b'-');
    push_digits(buf, d, 2);
    buf.push(b'T');
    push_digits(buf, (sod / 3600) as u32, 2);
    buf.push(b':');
    push_digits(buf, (sod / 60 % 60) as u32, 2);
    buf.push(b':');
    push_digits(buf, (sod % 60) as u32, 2);
    buf.push(b'.');
    push_digits(buf, ms.rem_euclid(1000) as u32, 3);
    buf.push(b'Z');
}

/// The time from `first_ns` to `last_ns` in seconds with milliseconds (`14.306`), as the two
/// ISO times of [`format_iso`] show it: both are cut to the millisecond first, so `first_seen`
/// plus `duration` gives back exactly the last time a schema 3 report printed. Zeek's conn.log
/// gives a connection's start and duration the same way.
pub fn push_duration(buf: &mut Vec<u8>, first_ns: i64, last_ns: i64) {
    let ms = (last_ns.div_euclid(1_000_000) - first_ns.div_euclid(1_000_000)).max(0);
    super::push_int(buf, ms / 1000);
    buf.push(b'.');
    push_digits(buf, (ms % 1000) as u32, 3);
}

/// A `duration` cell (seconds, up to nine decimals, not negative) to nanoseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    if s.starts_with('-') || s.starts_with('+') {
        return None;
    }
    parse_epoch(s)
}

fn push_digits(buf: &mut Vec<u8>, n: u32, width: u32) {
    for i in (0..width).rev() {
        buf.push(b'0' + (n / 10u32.pow(i) % 10) as u8);
    }
}

/// `2026-01-01T00:00:03.048Z` (one to nine decimals, or none) to nanoseconds since the epoch.
/// Only UTC (`Z`) is accepted: reports never carry another offset.
pub fn parse_iso(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[b.len() - 1] != b'Z' {
        return None;
    }
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let seps = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if seps.iter().any(|&(i, c)| b[i] != c) {
        return None;
    }
    let (y, m, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hh, mm, ss) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) || hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    let frac = &s[19..s.len() - 1];
    let ns = match frac.strip_prefix('.') {
        None if frac.is_empty() => 0,
        Some(f) if (1..=9).contains(&f.len()) => num(20, f.len())? * 10i64.pow(9 - f.len() as u32),
        _ => return None,
    };
    let secs = days_from_civil(y, m as u32, d as u32) * 86_400 + hh * 3600 + mm * 60 + ss;
    secs.checked_mul(1_000_000_000)?.checked_add(ns)
}

/// `1700000000.123456789` (epoch seconds, up to nine decimals: schema 2 reports, Zeek's `ts`)
/// to nanoseconds. A negative time counts its fraction away from zero (`-1.5` is -1.5 s).
pub fn parse_epoch(s: &str) -> Option<i64> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut ns: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    for _ in frac.len()..9 {
        ns *= 10;
    }
    secs.checked_mul(1_000_000_000)?
        .checked_add(if secs < 0 { -ns } else { ns })
}

/// A report time in either form: ISO 8601 (schema 3) or epoch seconds (schema 2).
pub fn parse_time(s: &str) -> Option<i64> {
    parse_iso(s).or_else(|| parse_epoch(s))
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12); // March is 0
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day counted from 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn known_instants_print_as_date_utilities_show_them() {
        // `date -u -d @0`, `@1700000000`, `@951782400` (2000-02-29), `@4107542399`.
        assert_eq!(format_iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_iso(1_700_000_000 * S), "2023-11-14T22:13:20.000Z");
        assert_eq!(format_iso(951_782_400 * S), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_iso(4_107_542_399 * S), "2100-02-28T23:59:59.000Z");
        assert_eq!(
            format_iso(1_767_225_603_048_999_999),
            "2026-01-01T00:00:03.048Z"
        );
        // Before the epoch the time is cut toward the past: -1 ns is in the last millisecond
        // of 1969.
        assert_eq!(format_iso(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_iso(i64::MIN), "1677-09-21T00:12:43.145Z");
        assert_eq!(format_iso(i64::MAX), "2262-04-11T23:47:16.854Z");
    }

    #[test]
    fn iso_reads_back_what_it_writes_and_refuses_the_rest() {
        for t in [
            0,
            -1_000_000,
            951_782_400 * S,
            1_767_225_603_048_000_000,
            4_107_542_399_999 * 1_000_000,
        ] {
            assert_eq!(parse_iso(&format_iso(t)), Some(t), "{t}");
        }
        assert_eq!(
            parse_iso("2026-01-01T00:00:03.048123456Z"),
            Some(1_767_225_603_048_123_456)
        );
        assert_eq!(parse_iso("2026-01-01T00:00:03Z"), Some(1_767_225_603 * S));
        assert_eq!(
            parse_iso("2026-01-01T00:00:03.5Z"),
            Some(1_767_225_603_500_000_000)
        );
        for bad in [
            "",
            "2026-01-01T00:00:03.048",
            "2026-01-01 00:00:03.048Z",
            "2026-13-01T00:00:03.048Z",
            "2025-02-29T00:00:00.000Z",
            "2026-01-01T24:00:00.000Z",
            "2026-01-01T00:00:03.Z",
            "2026-01-01T00:00:03.0123456789Z",
            "2026-01-01T00:00:03.04xZ",
            "1700000000.5",
        ] {
            assert_eq!(parse_iso(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn epoch_seconds_of_schema_2_still_read() {
        assert_eq!(parse_epoch("1.000000001"), Some(1_000_000_001));
        assert_eq!(parse_epoch("1700000000.5"), Some(1_700_000_000_500_000_000));
        assert_eq!(parse_epoch("XXXXXXXXXX.XXXXXX"), None);
        assert_eq!(parse_time("1700000000.5"), Some(1_700_000_000_500_000_000));
        assert_eq!(
            parse_time("2023-11-14T22:13:20.500Z"),
            Some(1_700_000_000_500_000_000)
        );
        assert_eq!(parse_time(""), None);
    }

    #[test]
    fn durations_are_the_difference_of_the_printed_times() {
        let d = |a: i64, b: i64| {
            let mut buf = Vec::new();
            push_duration(&mut buf, a, b);
            String::from_utf8(buf).unwrap()
        };
        // 22:13:20.203999 to 22:13:34.509000: the printed times are .203 and .509.
        let first = 1_700_000_000_203_999_000;
        assert_eq!(d(first, 1_700_000_014_509_000_000), "14.306");
        assert_eq!(d(first, first), "0.000");
        // .2039 and .2041 print as .203 and .204: one millisecond apart.
        assert_eq!(d(first, first + 200_000), "0.001");
        assert_eq!(d(0, 3_600 * S), "3600.000");
        assert_eq!(d(-1, 0), "0.001");
        let back =
            parse_iso("2023-11-14T22:13:20.203Z").unwrap() + parse_duration("14.306").unwrap();
        assert_eq!(format_iso(back), "2023-11-14T22:13:34.509Z");
        assert_eq!(parse_duration("0.5"), Some(500_000_000));
        for bad in ["", "-1.000", "+1", "1.0000000001", "x"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}
