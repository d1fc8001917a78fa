//! Exact decimal addition for INCRBYFLOAT.
//!
//! Redis adds in 80-bit long double and prints 17 decimals, so `0.1 + 0.2` reads back as
//! `0.3`. Plain f64 would print `0.30000000000000004`. Adding the decimal texts exactly gives
//! users Redis's answers for every ordinary operand, and is the same on every platform, which
//! replicated apply needs. Operands that do not fit fall back to f64.

/// Fraction digits kept, as Redis's `%.17Lf`.
const MAX_SCALE: u32 = 17;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decimal {
    mantissa: i128,
    scale: u32,
}

impl Decimal {
    /// Parses `[-+]digits[.digits][e[-+]digits]`; `None` when the text is no plain decimal or
    /// needs more than `MAX_SCALE` fraction digits or 38 significant ones.
    pub fn parse(text: &[u8]) -> Option<Decimal> {
        let (negative, rest) = match text.first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let (number, exponent) = match rest.iter().position(|&c| c == b'e' || c == b'E') {
            Some(at) => (
                &rest[..at],
                std::str::from_utf8(&rest[at + 1..])
                    .ok()?
                    .parse::<i32>()
                    .ok()?,
            ),
            None => (rest, 0),
        };
        let (int_part, frac_part) = match number.iter().position(|&c| c == b'.') {
            Some(dot) => (&number[..dot], &number[dot + 1..]),
            None => (number, &number[number.len()..]),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let mut mantissa: i128 = 0;
        for &d in int_part.iter().chain(frac_part) {
            if !d.is_ascii_digit() {
                return None;
            }
            mantissa = mantissa.checked_mul(10)?.checked_add((d - b'0') as i128)?;
        }
        let mut scale = frac_part.len() as i64 - exponent as i64;
        while scale < 0 {
            mantissa = mantissa.checked_mul(10)?;
            scale += 1;
        }
        let mut value = Decimal {
            mantissa: if negative { -mantissa } else { mantissa },
            scale: scale as u32,
        };
        value.normalize();
        (value.scale <= MAX_SCALE).then_some(value)
    }

    fn normalize(&mut self) {
        while self.scale > 0 && self.mantissa % 10 == 0 {
            self.mantissa /= 10;
            self.scale -= 1;
        }
    }

    fn rescale(self, scale: u32) -> Option<i128> {
        self.mantissa
            .checked_mul(10i128.checked_pow(scale - self.scale)?)
    }

    pub fn checked_add(self, other: Decimal) -> Option<Decimal> {
        let scale = self.scale.max(other.scale);
        let mut sum = Decimal {
            mantissa: self.rescale(scale)?.checked_add(other.rescale(scale)?)?,
            scale,
        };
        sum.normalize();
        Some(sum)
    }

    pub fn to_text(self) -> String {
        let digits = self.mantissa.unsigned_abs().to_string();
        let sign = if self.mantissa < 0 { "-" } else { "" };
        let scale = self.scale as usize;
        if scale == 0 {
            return format!("{sign}{digits}");
        }
        let padded = format!("{:0>width$}", digits, width = scale + 1);
        let (int_part, frac_part) = padded.split_at(padded.len() - scale);
        format!("{sign}{int_part}.{frac_part}")
    }
}

/// `current + increment` as INCRBYFLOAT stores it; `None` for a NaN or infinite result.
pub fn add_texts(
    current: &[u8],
    increment: &[u8],
    increment_f64: f64,
    current_f64: f64,
) -> Option<String> {
    if let (Some(a), Some(b)) = (Decimal::parse(current), Decimal::parse(increment)) {
        if let Some(sum) = a.checked_add(b) {
            return Some(sum.to_text());
        }
    }
    let sum = current_f64 + increment_f64;
    sum.is_finite().then(|| fixed_17(sum))
}

/// `value` printed with `MAX_SCALE` fraction digits, trailing zeros dropped, as Redis prints
/// its sums (so 1e-20 reads back as 0, and never as -0).
fn fixed_17(value: f64) -> String {
    let text = format!("{value:.prec$}", prec = MAX_SCALE as usize);
    let trimmed = text.trim_end_matches('0').trim_end_matches('.');
    match trimmed {
        "-0" => "0".into(),
        _ => trimmed.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(a: &str, b: &str) -> Option<String> {
        let fa = a.parse::<f64>().unwrap();
        let fb = b.parse::<f64>().unwrap();
        add_texts(a.as_bytes(), b.as_bytes(), fb, fa)
    }

    #[test]
    fn sums_read_back_like_redis() {
        assert_eq!(add("10.50", "0.1").as_deref(), Some("10.6"));
        assert_eq!(add("0.1", "0.2").as_deref(), Some("0.3"));
        assert_eq!(add("5.0e3", "2.0e2").as_deref(), Some("5200"));
        assert_eq!(add("3", "-3.0").as_deref(), Some("0"));
        assert_eq!(add("-1.5", "0.25").as_deref(), Some("-1.25"));
        assert_eq!(add("0", "0.00001").as_deref(), Some("0.00001"));
        assert_eq!(
            add("0", "123456789.123456789").as_deref(),
            Some("123456789.123456789")
        );
    }

    #[test]
    fn out_of_range_operands_fall_back_to_f64() {
        assert_eq!(
            add("1e300", "1").as_deref(),
            Some(format!("{:.0}", 1e300 + 1.0).as_str())
        );
        assert_eq!(
            add("1.7976931348623157e308", "1.7976931348623157e308"),
            None
        );
    }

    #[test]
    fn fallback_keeps_seventeen_decimals() {
        assert_eq!(add("0", "1e-20").as_deref(), Some("0"));
        assert_eq!(add("0", "-1e-20").as_deref(), Some("0"));
        assert_eq!(add("1", "1.000000000000000001").as_deref(), Some("2"));
    }

    #[test]
    fn rejects_non_decimals() {
        for bad in ["", ".", "-", "1.2.3", "abc", "1e", "0x10"] {
            assert!(Decimal::parse(bad.as_bytes()).is_none(), "{bad}");
        }
        assert!(
            Decimal::parse(b"0.123456789012345678").is_none(),
            "more than 17 decimals"
        );
    }
}
