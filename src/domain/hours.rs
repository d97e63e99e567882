//! Business hours: when the team is in, in the brand's time zone.
//!
//! `[hours]` is parsed here once, at load, into [`BusinessHours`]: an IANA
//! time zone (from the time-zone database through `jiff`, never a fixed
//! offset, so that a daylight-saving change moves the openings with the
//! wall clock), one range per weekday and a list of holidays. Everything
//! else asks three questions: is the team in at this instant
//! ([`BusinessHours::opens_after`]), when does it next open, and when is an
//! SLA of so many open hours due ([`BusinessHours::add_open`]). Times come
//! and go as [`Millis`]; only this module knows about calendars.

use std::collections::BTreeSet;
use std::fmt;

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use super::clock::Millis;
use super::language::Lang;

/// `[hours]` as written in the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHours {
    /// IANA name, such as `Europe/Paris`.
    pub timezone: String,
    /// `"09:00-18:00"`; absent: closed all day.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mon: Option<String>,
    /// Tuesday, likewise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tue: Option<String>,
    /// Wednesday, likewise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wed: Option<String>,
    /// Thursday, likewise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thu: Option<String>,
    /// Friday, likewise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fri: Option<String>,
    /// Saturday, likewise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sat: Option<String>,
    /// Sunday, likewise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sun: Option<String>,
    /// Days closed all day, `YYYY-MM-DD`, in the brand's time zone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holidays: Vec<String>,
}

/// When the team is in. Built only by parsing `[hours]`, so a value of this
/// type always has a known time zone and at least one open weekday.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(try_from = "RawHours", into = "RawHours")]
pub struct BusinessHours {
    tz: TimeZone,
    /// Monday first.
    week: [Option<Opening>; 7],
    holidays: BTreeSet<Date>,
    raw: RawHours,
}

/// One day's range. `close` is `None` for `24:00`, the end of the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Opening {
    open: Time,
    close: Option<Time>,
}

/// Why `[hours]` cannot be used, with what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HoursError(String);

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl TryFrom<RawHours> for BusinessHours {
    type Error = HoursError;

    fn try_from(raw: RawHours) -> Result<Self, HoursError> {
        let tz = TimeZone::get(&raw.timezone).map_err(|_| {
            HoursError(format!(
                "[hours] timezone `{}` is not a time zone of the IANA database: write a name such as \"Europe/Paris\" or \"America/New_York\"",
                raw.timezone
            ))
        })?;
        let given = [
            &raw.mon, &raw.tue, &raw.wed, &raw.thu, &raw.fri, &raw.sat, &raw.sun,
        ];
        let mut week = [None; 7];
        for (i, range) in given.into_iter().enumerate() {
            if let Some(r) = range {
                week[i] = Some(parse_range(DAYS[i], r)?);
            }
        }
        if week.iter().all(Option::is_none) {
            return Err(HoursError(
                "[hours] opens on no day: give at least one range, such as mon = \"09:00-18:00\" (or remove [hours] to answer as if always open)".into(),
            ));
        }
        let mut holidays = BTreeSet::new();
        for h in &raw.holidays {
            let d: Date = h.parse().map_err(|_| {
                HoursError(format!(
                    "[hours] holiday `{h}` is not a date: write it as YYYY-MM-DD, such as \"2026-12-25\""
                ))
            })?;
            holidays.insert(d);
        }
        Ok(BusinessHours {
            tz,
            week,
            holidays,
            raw,
        })
    }
}

impl From<BusinessHours> for RawHours {
    fn from(h: BusinessHours) -> RawHours {
        h.raw
    }
}

/// `"09:00-18:00"`: two `HH:MM` times, the second later (`24:00` for the
/// end of the day).
fn parse_range(day: &str, s: &str) -> Result<Opening, HoursError> {
    let bad = |why: &str| {
        HoursError(format!(
            "[hours] {day} = \"{s}\": {why}; write the day's range as \"09:00-18:00\" (remove the key for a day closed all day)"
        ))
    };
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| bad("a range is two times joined by `-`"))?;
    let open = parse_hhmm(a.trim()).ok_or_else(|| bad("the opening is not a time HH:MM"))?;
    let close = parse_hhmm(b.trim()).ok_or_else(|| bad("the closing is not a time HH:MM"))?;
    let open = open.ok_or_else(|| bad("a day cannot open at 24:00"))?;
    if close.is_some_and(|c| c <= open) {
        // A night shift is two days: "22:00-24:00" and, the next day,
        // "00:00-06:00".
        return Err(bad(
            "it closes before it opens (a night shift is \"22:00-24:00\" on one day and \"00:00-06:00\" on the next)",
        ));
    }
    Ok(Opening { open, close })
}

/// `HH:MM`; `Some(None)` for `24:00`.
fn parse_hhmm(s: &str) -> Option<Option<Time>> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: i8 = h.parse().ok()?;
    let m: i8 = m.parse().ok()?;
    if (h, m) == (24, 0) {
        return Some(None);
    }
    Time::new(h, m, 0, 0).ok().map(Some)
}

impl BusinessHours {
    /// The time zone's IANA name, as configured.
    pub fn timezone(&self) -> &str {
        &self.raw.timezone
    }

    /// `None` while the team is in at `at`; otherwise when it next opens.
    pub fn opens_after(&self, at: Millis) -> Option<Millis> {
        let mut day = self.date_of(at);
        for _ in 0..self.search_days() {
            if let Some((open, close)) = self.interval(day) {
                if at < open {
                    return Some(open);
                }
                if at < close {
                    return None;
                }
            }
            day = day.tomorrow().ok()?;
        }
        // Unreachable with one open weekday; never claim "closed forever".
        None
    }

    /// The instant `duration_ms` of open time after `start`: an SLA that
    /// only runs while the team is in.
    pub fn add_open(&self, start: Millis, duration_ms: i64) -> Millis {
        let mut left = duration_ms.max(0);
        let mut day = self.date_of(start);
        // An SLA of 72 h with one open hour a week runs 72 weeks; the
        // bound (some 110 years) is never reached with an open weekday.
        for _ in 0..40_000 {
            if let Some((open, close)) = self.interval(day) {
                let from = open.max(start);
                if from < close {
                    if close - from >= left {
                        return from + left;
                    }
                    left -= close - from;
                }
            }
            match day.tomorrow() {
                Ok(d) => day = d,
                Err(_) => break,
            }
        }
        start + duration_ms
    }

    /// The next opening, written for a customer who reads `lang` (English
    /// for a language without a table here), in the brand's time zone,
    /// with the zone's abbreviation: "lundi 7 décembre à 09:00 (CET)".
    pub fn describe(&self, at: Millis, lang: Option<Lang>) -> String {
        let ts = Timestamp::from_millisecond(at).unwrap_or(Timestamp::UNIX_EPOCH);
        let zoned = ts.to_zoned_datetime(self.tz.clone());
        let abbreviation = zoned.strftime("%Z").to_string();
        let names = names_for(lang);
        let wd = names.weekdays[zoned.weekday().to_monday_zero_offset() as usize];
        let month = names.months[zoned.month() as usize - 1];
        let time = format!("{:02}:{:02}", zoned.hour(), zoned.minute());
        let mut out = (names.pattern)(wd, zoned.day(), month, &time);
        out.push_str(" (");
        out.push_str(&abbreviation);
        out.push(')');
        out
    }

    /// `at` on the brand's wall clock, for agents: "2026-12-07 09:00 CET".
    pub fn local(&self, at: Millis) -> String {
        let ts = Timestamp::from_millisecond(at).unwrap_or(Timestamp::UNIX_EPOCH);
        ts.to_zoned_datetime(self.tz.clone())
            .strftime("%Y-%m-%d %H:%M %Z")
            .to_string()
    }

    /// The longest text [`BusinessHours::describe`] can give, in any
    /// language, for the length check of `ack_closed` at load.
    pub fn worst_description() -> String {
        let mut worst = String::new();
        for names in NAMES {
            for wd in names.weekdays {
                for month in names.months {
                    let s = format!("{} (+05:45)", (names.pattern)(wd, 30, month, "23:59"));
                    if s.chars().count() > worst.chars().count() {
                        worst = s;
                    }
                }
            }
        }
        worst
    }

    fn date_of(&self, at: Millis) -> Date {
        let ts = Timestamp::from_millisecond(at).unwrap_or(Timestamp::UNIX_EPOCH);
        self.tz.to_datetime(ts).date()
    }

    /// The open interval of `day`, as instants; `None` on a day closed,
    /// a holiday, or a range a daylight-saving change swallows whole.
    fn interval(&self, day: Date) -> Option<(Millis, Millis)> {
        if self.holidays.contains(&day) {
            return None;
        }
        let opening = self.week[day.weekday().to_monday_zero_offset() as usize]?;
        let open = self.instant(day.to_datetime(opening.open))?;
        let close = match opening.close {
            Some(c) => self.instant(day.to_datetime(c))?,
            None => self.instant(day.tomorrow().ok()?.to_datetime(Time::midnight()))?,
        };
        (open < close).then_some((open, close))
    }

    /// A wall-clock time in the brand's zone as an instant: a time that a
    /// spring-forward skips is read after the gap, a repeated one as its
    /// first occurrence.
    fn instant(&self, dt: DateTime) -> Option<Millis> {
        self.tz.to_timestamp(dt).ok().map(|t| t.as_millisecond())
    }

    /// Enough days to find an open one past every holiday.
    fn search_days(&self) -> usize {
        7 * (self.holidays.len() + 2)
    }
}

/// How one language writes a date and time.
struct Names {
    lang: &'static str,
    weekdays: [&'static str; 7],
    months: [&'static str; 12],
    pattern: fn(&str, i8, &str, &str) -> String,
}

const NAMES: [Names; 7] = [
    Names {
        lang: "en",
        weekdays: [
            "Monday",
            "Tuesday",
            "Wednesday",
            "Thursday",
            "Friday",
            "Saturday",
            "Sunday",
        ],
        months: [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ],
        pattern: |wd, d, m, t| format!("{wd} {d} {m} at {t}"),
    },
    Names {
        lang: "fr",
        weekdays: [
            "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
        ],
        months: [
            "janvier",
            "février",
            "mars",
            "avril",
            "mai",
            "juin",
            "juillet",
            "août",
            "septembre",
            "octobre",
            "novembre",
            "décembre",
        ],
        pattern: |wd, d, m, t| {
            let d = if d == 1 {
                "1er".to_owned()
            } else {
                d.to_string()
            };
            format!("{wd} {d} {m} à {t}")
        },
    },
    Names {
        lang: "es",
        weekdays: [
            "lunes",
            "martes",
            "miércoles",
            "jueves",
            "viernes",
            "sábado",
            "domingo",
        ],
        months: [
            "enero",
            "febrero",
            "marzo",
            "abril",
            "mayo",
            "junio",
            "julio",
            "agosto",
            "septiembre",
            "octubre",
            "noviembre",
            "diciembre",
        ],
        pattern: |wd, d, m, t| format!("{wd} {d} de {m} a las {t}"),
    },
    Names {
        lang: "de",
        weekdays: [
            "Montag",
            "Dienstag",
            "Mittwoch",
            "Donnerstag",
            "Freitag",
            "Samstag",
            "Sonntag",
        ],
        months: [
            "Januar",
            "Februar",
            "März",
            "April",
            "Mai",
            "Juni",
            "Juli",
            "August",
            "September",
            "Oktober",
            "November",
            "Dezember",
        ],
        pattern: |wd, d, m, t| format!("{wd}, {d}. {m}, {t} Uhr"),
    },
    Names {
        lang: "it",
        weekdays: [
            "lunedì",
            "martedì",
            "mercoledì",
            "giovedì",
            "venerdì",
            "sabato",
            "domenica",
        ],
        months: [
            "gennaio",
            "febbraio",
            "marzo",
            "aprile",
            "maggio",
            "giugno",
            "luglio",
            "agosto",
            "settembre",
            "ottobre",
            "novembre",
            "dicembre",
        ],
        pattern: |wd, d, m, t| format!("{wd} {d} {m} alle {t}"),
    },
    Names {
        lang: "pt",
        weekdays: [
            "segunda-feira",
            "terça-feira",
            "quarta-feira",
            "quinta-feira",
            "sexta-feira",
            "sábado",
            "domingo",
        ],
        months: [
            "janeiro",
            "fevereiro",
            "março",
            "abril",
            "maio",
            "junho",
            "julho",
            "agosto",
            "setembro",
            "outubro",
            "novembro",
            "dezembro",
        ],
        pattern: |wd, d, m, t| format!("{wd}, {d} de {m}, às {t}"),
    },
    Names {
        lang: "nl",
        weekdays: [
            "maandag",
            "dinsdag",
            "woensdag",
            "donderdag",
            "vrijdag",
            "zaterdag",
            "zondag",
        ],
        months: [
            "januari",
            "februari",
            "maart",
            "april",
            "mei",
            "juni",
            "juli",
            "augustus",
            "september",
            "oktober",
            "november",
            "december",
        ],
        pattern: |wd, d, m, t| format!("{wd} {d} {m} om {t}"),
    },
];

/// The names for `lang`; English when there is no table for it.
fn names_for(lang: Option<Lang>) -> &'static Names {
    lang.and_then(|l| NAMES.iter().find(|n| l.to_string() == n.lang))
        .unwrap_or(&NAMES[0])
}

impl fmt::Display for BusinessHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.raw.timezone)?;
        for (i, d) in DAYS.iter().enumerate() {
            let given = [
                &self.raw.mon,
                &self.raw.tue,
                &self.raw.wed,
                &self.raw.thu,
                &self.raw.fri,
                &self.raw.sat,
                &self.raw.sun,
            ][i];
            if let Some(r) = given {
                write!(f, ", {d} {r}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(toml_src: &str) -> BusinessHours {
        let raw: RawHours = toml::from_str(toml_src).unwrap();
        BusinessHours::try_from(raw).unwrap()
    }

    fn paris() -> BusinessHours {
        hours(
            r#"
            timezone = "Europe/Paris"
            mon = "09:00-18:00"
            tue = "09:00-18:00"
            wed = "09:00-18:00"
            thu = "09:00-18:00"
            fri = "09:00-17:00"
            holidays = ["2026-12-25"]
            "#,
        )
    }

    /// An instant written with its offset, as RFC 3339.
    fn at(s: &str) -> Millis {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn open_and_closed_at_the_edges_of_the_day() {
        let h = paris();
        // Monday 30 November 2026, Paris is UTC+1.
        let cases = [
            ("2026-11-30T07:59:59Z", Some("2026-11-30T08:00:00Z")),
            ("2026-11-30T08:00:00Z", None),
            ("2026-11-30T16:59:59Z", None),
            ("2026-11-30T17:00:00Z", Some("2026-12-01T08:00:00Z")),
            // Friday closes at 17:00; the weekend is closed: Monday.
            ("2026-12-04T16:00:00Z", Some("2026-12-07T08:00:00Z")),
            ("2026-12-05T12:00:00Z", Some("2026-12-07T08:00:00Z")),
            // Christmas (a Friday) is a holiday: Monday 28th.
            ("2026-12-24T20:00:00Z", Some("2026-12-28T08:00:00Z")),
        ];
        for (now, want) in cases {
            assert_eq!(h.opens_after(at(now)), want.map(at), "at {now}");
        }
    }

    #[test]
    fn openings_follow_the_wall_clock_across_daylight_saving() {
        let h = paris();
        // Paris moves to summer time on Sunday 29 March 2026: Friday opens
        // at 08:00 UTC, Monday at 07:00 UTC.
        assert_eq!(
            h.opens_after(at("2026-03-27T18:00:00Z")),
            Some(at("2026-03-30T07:00:00Z"))
        );
        // And back on Sunday 25 October.
        assert_eq!(
            h.opens_after(at("2026-10-24T12:00:00Z")),
            Some(at("2026-10-26T08:00:00Z"))
        );
        let ny = hours(
            r#"
            timezone = "America/New_York"
            sun = "01:00-04:00"
            "#,
        );
        // 8 March 2026, 02:00 does not exist in New York; the range is two
        // hours long that day, and an SLA of three open hours runs on to
        // the next Sunday.
        let start = at("2026-03-08T06:00:00Z"); // 01:00 EST
        assert_eq!(
            ny.add_open(start, 2 * 3_600_000),
            at("2026-03-08T08:00:00Z") // 04:00 EDT
        );
        assert_eq!(
            ny.add_open(start, 3 * 3_600_000),
            at("2026-03-15T06:00:00Z") // 02:00 EDT a week later
        );
    }

    #[test]
    fn an_sla_counts_open_hours_only() {
        let h = paris();
        let hour = 3_600_000;
        let cases = [
            // Monday 10:00 Paris + 4 h: 14:00 the same day.
            ("2026-11-30T09:00:00Z", 4, "2026-11-30T13:00:00Z"),
            // Monday 16:00 + 4 h: 2 h on Monday, 2 h on Tuesday.
            ("2026-11-30T15:00:00Z", 4, "2026-12-01T10:00:00Z"),
            // Saturday: the clock starts on Monday at 09:00.
            ("2026-12-05T10:00:00Z", 1, "2026-12-07T09:00:00Z"),
            // Thursday 24th 17:00 + 24 h: 1 h on Thursday, none on the
            // holiday or the weekend, 9 h Mon 28th … to Wednesday 30th 14:00.
            ("2026-12-24T16:00:00Z", 24, "2026-12-30T13:00:00Z"),
            // docs/rules.md's example: Friday 17:30, 24 h: Wednesday 15:00.
            ("2026-12-04T16:30:00Z", 24, "2026-12-09T14:00:00Z"),
        ];
        for (start, h_, want) in cases {
            assert_eq!(
                h.add_open(at(start), h_ * hour),
                at(want),
                "{start} + {h_} h"
            );
        }
    }

    #[test]
    fn the_opening_is_written_in_the_customers_language() {
        let h = paris();
        let opens = at("2026-12-07T08:00:00Z");
        let fr = Lang::parse("fr").unwrap();
        let es = Lang::parse("es").unwrap();
        let ja = Lang::parse("ja").unwrap();
        assert_eq!(
            h.describe(opens, Some(fr)),
            "lundi 7 décembre à 09:00 (CET)"
        );
        assert_eq!(
            h.describe(opens, Some(es)),
            "lunes 7 de diciembre a las 09:00 (CET)"
        );
        assert_eq!(h.describe(opens, None), "Monday 7 December at 09:00 (CET)");
        assert_eq!(h.local(opens), "2026-12-07 09:00 CET");
        assert_eq!(
            h.describe(opens, Some(ja)),
            "Monday 7 December at 09:00 (CET)"
        );
        let summer = at("2026-06-01T07:00:00Z");
        assert_eq!(
            h.describe(summer, Some(fr)),
            "lundi 1er juin à 09:00 (CEST)"
        );
        let worst = BusinessHours::worst_description();
        for names in NAMES {
            let l = Lang::parse(names.lang).unwrap();
            assert!(h.describe(summer, Some(l)).chars().count() <= worst.chars().count());
        }
    }

    #[test]
    fn mistakes_are_named_with_the_fix() {
        let err = |src: &str| {
            let raw: RawHours = toml::from_str(src).unwrap();
            BusinessHours::try_from(raw).unwrap_err().to_string()
        };
        assert!(err("timezone = \"Paris\"\nmon = \"09:00-18:00\"").contains("IANA"));
        assert!(err("timezone = \"UTC\"").contains("opens on no day"));
        assert!(err("timezone = \"UTC\"\nmon = \"9-18\"").contains("not a time HH:MM"));
        assert!(err("timezone = \"UTC\"\nmon = \"18:00-09:00\"").contains("night shift"));
        assert!(
            err("timezone = \"UTC\"\nmon = \"09:00-18:00\"\nholidays = [\"25/12\"]")
                .contains("YYYY-MM-DD")
        );
        let all_day = hours("timezone = \"UTC\"\nsat = \"00:00-24:00\"");
        assert_eq!(all_day.opens_after(at("2026-12-05T23:59:59Z")), None);
        assert_eq!(
            all_day.opens_after(at("2026-12-06T00:00:00Z")),
            Some(at("2026-12-12T00:00:00Z"))
        );
    }
}
