//! Money as a person types it at the till's terminal, read strictly: digits, and optionally a
//! point and one or two more digits (`12`, `12.5`, `12.34`). Anything else — a sign, a second
//! point, a stray character, an exponent, a comma, spaces — is refused rather than guessed at:
//! `1.-5` once became a purchase of 0.50 and `-5.50` one of −4.50. The functions here are clap
//! value parsers, so a refusal names the flag the person typed (`--total`, `--amount`, `--line`).

use loyalty_server::service::checkout::MAX_TOTAL_MINOR;

/// An amount in minor units (`12.34` is 1234), from 0 up to the most one receipt may hold.
pub fn amount(text: &str) -> Result<i64, String> {
    let minor = parse_minor(text).ok_or_else(|| {
        format!(
            "`{text}` is not an amount: write it like 12.34 (digits, at most two after the point, no sign)"
        )
    })?;
    if minor > MAX_TOTAL_MINOR {
        return Err(format!(
            "{} is more than {}, the most one receipt can hold",
            show(minor),
            show(MAX_TOTAL_MINOR)
        ));
    }
    Ok(minor)
}

/// As [`amount`], but more than zero (a refund of nothing is no refund).
pub fn positive_amount(text: &str) -> Result<i64, String> {
    match amount(text)? {
        0 => Err("the amount must be more than 0.00".into()),
        minor => Ok(minor),
    }
}

/// Minor units for people: 1234 as `12.34`.
pub fn show(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// `DIGITS [ "." DIGIT [DIGIT] ]` as minor units; `None` for anything else or an overflow.
fn parse_minor(text: &str) -> Option<i64> {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || fraction.is_some_and(|f| !digits(f) || f.len() > 2) {
        return None;
    }
    let cents = match fraction {
        None => 0,
        Some(f) if f.len() == 1 => f.parse::<i64>().ok()? * 10,
        Some(f) => f.parse::<i64>().ok()?,
    };
    whole
        .parse::<i64>()
        .ok()?
        .checked_mul(100)?
        .checked_add(cents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_amounts_are_read() {
        for (text, minor) in [
            ("12.34", 1234),
            ("12.3", 1230),
            ("12", 1200),
            ("0", 0),
            ("0.05", 5),
            ("007.50", 750),
            ("10000000.00", MAX_TOTAL_MINOR),
        ] {
            assert_eq!(amount(text), Ok(minor), "{text}");
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for text in [
            "1.-5", "-5.50", "-1", "+1", "1.234", ".5", "1.", "", " 1", "1 ", "1,50", "1e3",
            "1.5.0", "0x10", "½", "١٢", "12.3a", "NaN", "inf", "--1",
        ] {
            let refusal = amount(text).unwrap_err();
            assert!(refusal.contains("is not an amount"), "{text}: {refusal}");
        }
        assert!(
            amount("10000000.01")
                .unwrap_err()
                .contains("the most one receipt")
        );
        assert!(amount("99999999999999999999").is_err(), "overflow");
        assert!(positive_amount("0.00").is_err());
        assert_eq!(positive_amount("0.01"), Ok(1));
    }

    #[test]
    fn minor_units_print_as_money() {
        assert_eq!(show(1234), "12.34");
        assert_eq!(show(5), "0.05");
        assert_eq!(show(-450), "-4.50");
        assert_eq!(show(i64::MIN), "-92233720368547758.08");
    }
}
