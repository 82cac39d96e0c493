//! Go-compatible formatting and parsing.
//!
//! Lima is written in Go: its messages come from `fmt`, its shell scripts from
//! `shellescape`, its sizes from `go-units`. Callers may match on that text, so
//! the simulator reproduces it byte for byte where it matters.

/// Go's `%q` / `strconv.Quote`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

// Approximates unicode.IsPrint: graphic characters plus the ASCII space.
fn is_go_printable(c: char) -> bool {
    c == ' ' || !(c.is_control() || c.is_whitespace() || ('\u{200b}'..='\u{200f}').contains(&c))
}

/// `al.essio.dev/pkg/shellescape.Quote`, which Lima uses for every word of the
/// remote command. Works on bytes because paths need not be UTF-8.
pub fn shell_quote(s: &[u8]) -> Vec<u8> {
    if s.is_empty() {
        return b"''".to_vec();
    }
    let safe = |b: &u8| b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(b);
    if s.iter().all(safe) {
        return s.to_vec();
    }
    let mut out = Vec::with_capacity(s.len() + 2);
    out.push(b'\'');
    for &b in s {
        if b == b'\'' {
            out.extend_from_slice(b"'\"'\"'");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    out
}

/// Splits a float into its shortest (or rounded) decimal digits and the
/// position of the decimal point, the way strconv's `decimal` does.
fn decimal_digits(scientific: &str) -> (bool, String, i32) {
    // `scientific` looks like "-1.2345e-5" (Rust's `{:e}` output).
    let (neg, rest) = match scientific.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, scientific),
    };
    let (mantissa, exp) = rest.split_once('e').unwrap_or((rest, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    if digits == "0" {
        return (neg, digits, 1);
    }
    (neg, digits, exp + 1)
}

// strconv's %e and %f back ends for the 'g' verb.
fn fmt_g(neg: bool, digits: &str, dp: i32, prec: i32, shortest: bool) -> String {
    let nd = digits.len() as i32;
    let mut eprec = prec;
    if eprec > nd && nd >= dp {
        eprec = nd;
    }
    if shortest {
        eprec = 6;
    }
    let exp = dp - 1;
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if digits == "0" {
        out.push('0');
        return out;
    }
    if exp < -4 || exp >= eprec {
        out.push_str(&digits[..1]);
        if nd > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let sign = if exp < 0 { '-' } else { '+' };
        out.push_str(&format!("e{sign}{:02}", exp.abs()));
        return out;
    }
    if dp <= 0 {
        out.push_str("0.");
        out.push_str(&"0".repeat((-dp) as usize));
        out.push_str(digits);
    } else if dp >= nd {
        out.push_str(digits);
        out.push_str(&"0".repeat((dp - nd) as usize));
    } else {
        out.push_str(&digits[..dp as usize]);
        out.push('.');
        out.push_str(&digits[dp as usize..]);
    }
    out
}

/// `strconv.FormatFloat(float64(f), 'g', -1, 32)`: how pflag prints a float32
/// flag value, e.g. in Lima's `.memory = "%sGiB"`.
pub fn format_float32(f: f32) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let (neg, digits, dp) = decimal_digits(&format!("{f:e}"));
    fmt_g(neg, &digits, dp, -1, true)
}

/// Go's `%.4g`, used by go-units to print sizes.
pub fn format_g4(f: f64) -> String {
    let (neg, digits, dp) = decimal_digits(&format!("{f:.3e}"));
    fmt_g(neg, &digits, dp, 4, false)
}

/// go-units `BytesSize`: binary units with four significant digits.
pub fn bytes_size(n: i64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut size = n as f64;
    let mut i = 0;
    while size >= 1024.0 && i < UNITS.len() - 1 {
        size /= 1024.0;
        i += 1;
    }
    format!("{}{}", format_g4(size), UNITS[i])
}

/// go-units `RAMInBytes` (binary multipliers for both "G" and "GiB").
pub fn ram_in_bytes(s: &str) -> Result<i64, String> {
    let invalid = || format!("invalid size: '{s}'");
    let sep = s
        .rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ')
        .ok_or_else(invalid)?;
    let (num, sfx) = if s.as_bytes()[sep] == b' ' {
        (&s[..sep], &s[sep + 1..])
    } else {
        (&s[..=sep], &s[sep + 1..])
    };
    let size = parse_float64(num)?;
    if size < 0.0 {
        return Err(invalid());
    }
    if sfx.is_empty() {
        return Ok(size as i64);
    }
    let bad_suffix = || format!("invalid suffix: '{}'", sfx.to_lowercase());
    if sfx.len() > 3 {
        return Err(format!("invalid suffix: '{sfx}'"));
    }
    let sfx = sfx.to_lowercase();
    let first = sfx.as_bytes()[0];
    if first == b'b' {
        return if sfx.len() > 1 {
            Err(bad_suffix())
        } else {
            Ok(size as i64)
        };
    }
    let mul: f64 = match first {
        b'k' => 1024.0,
        b'm' => 1024f64.powi(2),
        b'g' => 1024f64.powi(3),
        b't' => 1024f64.powi(4),
        b'p' => 1024f64.powi(5),
        _ => return Err(bad_suffix()),
    };
    match sfx.len() {
        2 if &sfx[1..] != "b" => return Err(bad_suffix()),
        3 if &sfx[1..] != "ib" => return Err(bad_suffix()),
        _ => {}
    }
    Ok((size * mul) as i64)
}

fn syntax_error(func: &str, s: &str) -> String {
    format!("strconv.{func}: parsing {}: invalid syntax", quote(s))
}

fn range_error(func: &str, s: &str) -> String {
    format!("strconv.{func}: parsing {}: value out of range", quote(s))
}

/// `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(syntax_error("ParseBool", s)),
    }
}

// Digits of an integer literal with Go's base-0 prefixes and underscores.
fn parse_unsigned_base0(s: &str) -> Option<Result<u64, ()>> {
    let lower = s.to_ascii_lowercase();
    let (base, digits, prefixed) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.to_string(), true)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.to_string(), true)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.to_string(), true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string(), true)
    } else {
        (10, lower, false)
    };
    if digits.contains('_') && !prefixed {
        return None;
    }
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    if clean.is_empty() || digits.starts_with('_') || digits.ends_with('_') || digits.contains("__")
    {
        return None;
    }
    if !clean.chars().all(|c| c.is_digit(base)) {
        return None;
    }
    Some(u64::from_str_radix(&clean, base).map_err(|_| ()))
}

/// `strconv.ParseInt(s, 0, 64)`, as pflag's int flags use it.
pub fn parse_int(s: &str) -> Result<i64, String> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    match parse_unsigned_base0(body) {
        None => Err(syntax_error("ParseInt", s)),
        Some(Err(())) => Err(range_error("ParseInt", s)),
        Some(Ok(v)) => {
            let limit = if neg { 1u64 << 63 } else { (1u64 << 63) - 1 };
            if v > limit {
                return Err(range_error("ParseInt", s));
            }
            Ok(if neg {
                (v as i128).wrapping_neg() as i64
            } else {
                v as i64
            })
        }
    }
}

/// `strconv.ParseUint(s, 0, 16)`.
pub fn parse_uint16(s: &str) -> Result<u16, String> {
    if s.starts_with(['+', '-']) {
        return Err(syntax_error("ParseUint", s));
    }
    match parse_unsigned_base0(s) {
        None => Err(syntax_error("ParseUint", s)),
        Some(Ok(v)) if v <= u16::MAX as u64 => Ok(v as u16),
        Some(_) => Err(range_error("ParseUint", s)),
    }
}

fn is_float_literal(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let lower = body.to_ascii_lowercase();
    if ["inf", "infinity", "nan"].contains(&lower.as_str()) {
        return true;
    }
    let (mantissa, exp) = match lower.split_once('e') {
        Some((m, e)) => (m, Some(e)),
        None => (lower.as_str(), None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits_ok = |d: &str| d.chars().all(|c| c.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits_ok(int) || !digits_ok(frac) {
        return false;
    }
    match exp {
        None => true,
        Some(e) => {
            let e = e.strip_prefix(['+', '-']).unwrap_or(e);
            !e.is_empty() && digits_ok(e)
        }
    }
}

/// `strconv.ParseFloat(s, 64)` (decimal forms only).
pub fn parse_float64(s: &str) -> Result<f64, String> {
    if !is_float_literal(s) {
        return Err(syntax_error("ParseFloat", s));
    }
    let v: f64 = s.parse().map_err(|_| syntax_error("ParseFloat", s))?;
    if v.is_infinite() && !s.to_ascii_lowercase().contains("inf") {
        return Err(range_error("ParseFloat", s));
    }
    Ok(v)
}

/// `strconv.ParseFloat(s, 32)`, as pflag's float32 flags use it.
pub fn parse_float32(s: &str) -> Result<f32, String> {
    let v = parse_float64(s)?;
    let f = v as f32;
    if f.is_infinite() && !v.is_infinite() {
        return Err(range_error("ParseFloat", s));
    }
    Ok(f)
}

/// `time.ParseDuration`, returning seconds.
pub fn parse_duration(orig: &str) -> Result<f64, String> {
    let invalid = || format!("time: invalid duration {}", quote(orig));
    let (neg, mut s) = match orig.as_bytes().first() {
        Some(b'-') => (true, &orig[1..]),
        Some(b'+') => (false, &orig[1..]),
        _ => (false, orig),
    };
    if s == "0" {
        return Ok(0.0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total = 0.0;
    while !s.is_empty() {
        let num_end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let num = &s[..num_end];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(invalid());
        }
        let value: f64 = num.parse().map_err(|_| invalid())?;
        s = &s[num_end..];
        let unit_end = s
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(s.len());
        let unit = &s[..unit_end];
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration {}", quote(orig)));
        }
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    quote(unit),
                    quote(orig)
                ))
            }
        };
        total += value * scale;
        s = &s[unit_end..];
    }
    Ok(if neg { -total } else { total })
}

/// `time.Duration.String` for whole milliseconds and up (enough for messages).
pub fn format_duration(secs: f64) -> String {
    if secs == 0.0 {
        return "0s".into();
    }
    if secs.abs() < 1.0 {
        let ms = secs * 1000.0;
        return format!("{}ms", format_trimmed(ms));
    }
    let neg = secs < 0.0;
    let mut rest = secs.abs();
    let hours = (rest / 3600.0).floor();
    rest -= hours * 3600.0;
    let minutes = (rest / 60.0).floor();
    rest -= minutes * 60.0;
    let mut out = String::from(if neg { "-" } else { "" });
    if hours > 0.0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0.0 || minutes > 0.0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&format!("{}s", format_trimmed(rest)));
    out
}

fn format_trimmed(v: f64) -> String {
    let s = format!("{v:.9}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_matches_go() {
        assert_eq!(quote("plain"), "\"plain\"");
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(quote("tab\tnl\n"), "\"tab\\tnl\\n\"");
        assert_eq!(quote("\u{1b}[0m"), "\"\\x1b[0m\"");
        assert_eq!(quote("héllo ✓"), "\"héllo ✓\"");
        assert_eq!(quote("\u{a0}"), "\"\\u00a0\"");
    }

    #[test]
    fn shell_quote_matches_shellescape() {
        assert_eq!(shell_quote(b""), b"''");
        assert_eq!(shell_quote(b"/usr/bin/env"), b"/usr/bin/env");
        assert_eq!(shell_quote(b"a=b,c:d@e%f+g"), b"a=b,c:d@e%f+g");
        assert_eq!(shell_quote(b"two words"), b"'two words'");
        assert_eq!(shell_quote(b"it's"), b"'it'\"'\"'s'");
        assert_eq!(shell_quote("é".as_bytes()), "'é'".as_bytes());
        assert_eq!(shell_quote(b"$HOME"), b"'$HOME'");
    }

    #[test]
    fn float32_like_pflag() {
        assert_eq!(format_float32(4.0), "4");
        assert_eq!(format_float32(2.5), "2.5");
        assert_eq!(format_float32(0.1), "0.1");
        assert_eq!(format_float32(100000.0), "100000");
        assert_eq!(format_float32(1000000.0), "1e+06");
        assert_eq!(format_float32(0.00001), "1e-05");
        assert_eq!(format_float32(-3.25), "-3.25");
        assert_eq!(format_float32(0.0), "0");
    }

    #[test]
    fn sizes_like_go_units() {
        assert_eq!(bytes_size(4 << 30), "4GiB");
        assert_eq!(bytes_size(3 << 29), "1.5GiB");
        assert_eq!(bytes_size(100 << 30), "100GiB");
        assert_eq!(bytes_size(512), "512B");
        assert_eq!(ram_in_bytes("4GiB"), Ok(4 << 30));
        assert_eq!(ram_in_bytes("2.5GiB"), Ok(5 << 29));
        assert_eq!(ram_in_bytes("1 GB"), Ok(1 << 30));
        assert_eq!(ram_in_bytes("1e+06GiB"), Ok(1_000_000 * (1 << 30)));
        assert_eq!(ram_in_bytes("12"), Ok(12));
        assert_eq!(
            ram_in_bytes("lots"),
            Err("invalid size: 'lots'".to_string())
        );
        assert_eq!(ram_in_bytes("4Gx"), Err("invalid suffix: 'gx'".to_string()));
    }

    #[test]
    fn numbers_like_strconv() {
        assert_eq!(parse_int("42"), Ok(42));
        assert_eq!(parse_int("-0x10"), Ok(-16));
        assert_eq!(parse_int("010"), Ok(8));
        assert_eq!(
            parse_int("four"),
            Err("strconv.ParseInt: parsing \"four\": invalid syntax".to_string())
        );
        assert_eq!(parse_uint16("65535"), Ok(65535));
        assert!(parse_uint16("65536")
            .unwrap_err()
            .ends_with("value out of range"));
        assert_eq!(parse_bool("True"), Ok(true));
        assert!(parse_bool("yes").is_err());
        assert_eq!(parse_float32("2.5"), Ok(2.5));
        assert!(parse_float32("2,5").is_err());
        assert!(parse_float32("1e39")
            .unwrap_err()
            .ends_with("value out of range"));
    }

    #[test]
    fn durations_like_time() {
        assert_eq!(parse_duration("10m"), Ok(600.0));
        assert_eq!(parse_duration("1h30m"), Ok(5400.0));
        assert_eq!(parse_duration("1.5s"), Ok(1.5));
        assert_eq!(parse_duration("0"), Ok(0.0));
        assert_eq!(
            parse_duration("10"),
            Err("time: missing unit in duration \"10\"".to_string())
        );
        assert_eq!(
            parse_duration("3x"),
            Err("time: unknown unit \"x\" in duration \"3x\"".to_string())
        );
        assert_eq!(
            parse_duration("soon"),
            Err("time: invalid duration \"soon\"".to_string())
        );
        assert_eq!(format_duration(600.0), "10m0s");
        assert_eq!(format_duration(3661.5), "1h1m1.5s");
        assert_eq!(format_duration(0.25), "250ms");
    }
}
