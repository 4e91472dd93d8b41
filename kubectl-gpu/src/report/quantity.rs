//! Kubernetes quantities (`resource.Quantity`) as exact milli-units, enough
//! to add and compare requests: `2`, `500m`, `1.5`, `1k`, `2Ki`, `1e3`.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// A quantity in thousandths of a unit (`1` → 1000, `250m` → 250).
/// Sub-milli precision (`1u`, `1n`) rounds up, as the API server does for
/// `MilliValue`.
pub fn milli(q: &Quantity) -> Option<i128> {
    parse_milli(&q.0)
}

/// Parses the text of a quantity into milli-units.
pub fn parse_milli(text: &str) -> Option<i128> {
    let s = text.trim();
    if s.is_empty() {
        return None;
    }
    let (sign, s) = match s.as_bytes()[0] {
        b'-' => (-1, &s[1..]),
        b'+' => (1, &s[1..]),
        _ => (1, s),
    };
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(num_end);
    if number.is_empty() || number == "." {
        return None;
    }
    // Exponent: decimal power of ten.
    let (mul_num, mul_den): (i128, i128) = match suffix {
        "" => (1, 1),
        "n" => (1, 1_000_000_000),
        "u" => (1, 1_000_000),
        "m" => (1, 1_000),
        "k" => (1_000, 1),
        "M" => (1_000_000, 1),
        "G" => (1_000_000_000, 1),
        "T" => (1_000_000_000_000, 1),
        "P" => (1_000_000_000_000_000, 1),
        "E" => (1_000_000_000_000_000_000, 1),
        "Ki" => (1 << 10, 1),
        "Mi" => (1 << 20, 1),
        "Gi" => (1 << 30, 1),
        "Ti" => (1 << 40, 1),
        "Pi" => (1 << 50, 1),
        "Ei" => (1 << 60, 1),
        exp if exp.starts_with(['e', 'E']) => {
            let e: i32 = exp[1..].parse().ok()?;
            if !(-9..=18).contains(&e) {
                return None;
            }
            if e >= 0 {
                (10i128.pow(e as u32), 1)
            } else {
                (1, 10i128.pow((-e) as u32))
            }
        }
        _ => return None,
    };
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if frac_part.len() > 18 || int_part.len() > 20 {
        return None;
    }
    let int: i128 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().ok()?
    };
    let frac: i128 = if frac_part.is_empty() {
        0
    } else {
        frac_part.parse().ok()?
    };
    let frac_den = 10i128.pow(frac_part.len() as u32);
    // value = (int + frac/frac_den) * mul_num / mul_den, in milli-units, rounded up.
    let numer = (int * frac_den + frac)
        .checked_mul(mul_num)?
        .checked_mul(1000)?;
    let denom = frac_den * mul_den;
    let value = (numer + denom - 1) / denom;
    Some(sign * value)
}

/// Whole units from milli-units, rounded up (a device count).
pub fn units(milli: i128) -> i64 {
    let u = if milli >= 0 {
        (milli + 999) / 1000
    } else {
        milli / 1000
    };
    i64::try_from(u).unwrap_or(if u > 0 { i64::MAX } else { i64::MIN })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        for (text, want) in [
            ("1", 1000),
            ("8", 8000),
            ("0", 0),
            ("500m", 500),
            ("1.5", 1500),
            (".5", 500),
            ("2k", 2_000_000),
            ("1Ki", 1_024_000),
            ("1e3", 1_000_000),
            ("1E-3", 1),
            ("1u", 1),
            ("+3", 3000),
            ("-1", -1000),
        ] {
            assert_eq!(parse_milli(text), Some(want), "{text}");
        }
        for bad in ["", "x", "1X", "1.2.3", "."] {
            assert_eq!(parse_milli(bad), None, "{bad}");
        }
        assert_eq!(units(1500), 2);
        assert_eq!(units(2000), 2);
        assert_eq!(units(0), 0);
    }
}
