//! Strict flag parsing with pflag's semantics and error texts: cobra (and so
//! Lima) rejects unknown flags, and callers must learn that here too.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;

use crate::gofmt;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Bool,
    Str,
    Int,
    Uint16,
    Float32,
    Duration,
    /// pflag StringSlice: values are split as CSV.
    StrSlice,
    /// pflag StringArray: one value per occurrence.
    StrArray,
    IpSlice,
}

#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub name: &'static str,
    pub short: Option<char>,
    pub kind: Kind,
    pub default: &'static str,
}

pub const fn flag(name: &'static str, kind: Kind) -> Spec {
    Spec {
        name,
        short: None,
        kind,
        default: "",
    }
}

impl Spec {
    pub const fn short(mut self, c: char) -> Spec {
        self.short = Some(c);
        self
    }

    pub const fn default(mut self, value: &'static str) -> Spec {
        self.default = value;
        self
    }

    fn display_name(&self) -> String {
        match self.short {
            Some(c) => format!("-{c}, --{}", self.name),
            None => format!("--{}", self.name),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Val {
    Bool(bool),
    Str(String),
    Int(i64),
    Float(f32),
    Secs(f64),
    List(Vec<String>),
}

#[derive(Debug, Default)]
pub struct Parsed {
    vals: HashMap<&'static str, Val>,
    changed: HashSet<&'static str>,
    /// Positional arguments, left as the OS gave them (paths need not be UTF-8).
    pub args: Vec<OsString>,
}

impl Parsed {
    pub fn changed(&self, name: &str) -> bool {
        self.changed.contains(name)
    }

    pub fn bool(&self, name: &str) -> bool {
        matches!(self.vals.get(name), Some(Val::Bool(true)))
    }

    pub fn str(&self, name: &str) -> String {
        match self.vals.get(name) {
            Some(Val::Str(s)) => s.clone(),
            _ => String::new(),
        }
    }

    pub fn int(&self, name: &str) -> i64 {
        match self.vals.get(name) {
            Some(Val::Int(i)) => *i,
            _ => 0,
        }
    }

    pub fn secs(&self, name: &str) -> f64 {
        match self.vals.get(name) {
            Some(Val::Secs(s)) => *s,
            _ => 0.0,
        }
    }

    pub fn list(&self, name: &str) -> Vec<String> {
        match self.vals.get(name) {
            Some(Val::List(l)) => l.clone(),
            _ => Vec::new(),
        }
    }

    /// pflag's `Value.String()`, as Lima interpolates it into yq expressions.
    pub fn value_string(&self, name: &str) -> String {
        match self.vals.get(name) {
            Some(Val::Bool(b)) => b.to_string(),
            Some(Val::Str(s)) => s.clone(),
            Some(Val::Int(i)) => i.to_string(),
            Some(Val::Float(f)) => gofmt::format_float32(*f),
            Some(Val::Secs(s)) => gofmt::format_duration(*s),
            Some(Val::List(l)) => format!("[{}]", l.join(",")),
            None => String::new(),
        }
    }

    /// Overrides a bool after parsing (used for `--tty`'s runtime default).
    pub fn set_bool(&mut self, name: &'static str, value: bool) {
        self.vals.insert(name, Val::Bool(value));
    }
}

// encoding/csv on one line, as pflag reads StringSlice values.
fn read_csv(s: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = s.char_indices().peekable();
    let mut field = String::new();
    let mut quoted = false;
    let mut at_start = true;
    while let Some((i, c)) = chars.next() {
        if quoted {
            if c == '"' {
                if matches!(chars.peek(), Some((_, '"'))) {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                    if !matches!(chars.peek(), None | Some((_, ','))) {
                        return Err(format!(
                            "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                            i + 2
                        ));
                    }
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            '"' if at_start => {
                quoted = true;
                at_start = false;
            }
            '"' => {
                return Err(format!(
                    "parse error on line 1, column {}: bare \" in non-quoted-field",
                    i + 1
                ))
            }
            ',' => {
                fields.push(std::mem::take(&mut field));
                at_start = true;
            }
            c => {
                field.push(c);
                at_start = false;
            }
        }
    }
    if quoted {
        return Err(format!(
            "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
            s.len() + 1
        ));
    }
    fields.push(field);
    Ok(fields)
}

fn convert(spec: &Spec, raw: &str, previous: Option<&Val>, first: bool) -> Result<Val, String> {
    let appended = |items: Vec<String>| -> Val {
        let mut all = match (previous, first) {
            (Some(Val::List(l)), false) => l.clone(),
            _ => Vec::new(),
        };
        all.extend(items);
        Val::List(all)
    };
    Ok(match spec.kind {
        Kind::Bool => Val::Bool(gofmt::parse_bool(raw)?),
        Kind::Str => Val::Str(raw.to_string()),
        Kind::Int => Val::Int(gofmt::parse_int(raw)?),
        Kind::Uint16 => Val::Int(gofmt::parse_uint16(raw)? as i64),
        Kind::Float32 => Val::Float(gofmt::parse_float32(raw)?),
        Kind::Duration => Val::Secs(gofmt::parse_duration(raw)?),
        Kind::StrArray => appended(vec![raw.to_string()]),
        Kind::StrSlice => appended(if raw.is_empty() {
            Vec::new()
        } else {
            read_csv(raw)?
        }),
        Kind::IpSlice => {
            let items = if raw.is_empty() {
                Vec::new()
            } else {
                read_csv(raw)?
            };
            for ip in &items {
                if ip.trim().parse::<std::net::IpAddr>().is_err() {
                    return Err(format!(
                        "invalid string being converted to IP address: {ip}"
                    ));
                }
            }
            appended(items)
        }
    })
}

struct Parser<'a> {
    specs: &'a [Spec],
    out: Parsed,
}

impl Parser<'_> {
    fn set(&mut self, spec: &Spec, raw: &str) -> Result<(), String> {
        let first = !self.out.changed.contains(spec.name);
        let val = convert(spec, raw, self.out.vals.get(spec.name), first).map_err(|e| {
            format!(
                "invalid argument {} for {} flag: {e}",
                gofmt::quote(raw),
                gofmt::quote(&spec.display_name())
            )
        })?;
        self.out.vals.insert(spec.name, val);
        self.out.changed.insert(spec.name);
        Ok(())
    }

    fn long(&mut self, arg: &str, rest: &mut std::slice::Iter<'_, OsString>) -> Result<(), String> {
        let body = &arg[2..];
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        if name.is_empty() || name.starts_with('-') || name.starts_with('=') {
            return Err(format!("bad flag syntax: {arg}"));
        }
        let Some(spec) = self.specs.iter().find(|s| s.name == name).copied() else {
            return Err(format!("unknown flag: --{name}"));
        };
        let value = match value {
            Some(v) => v,
            None if spec.kind == Kind::Bool => "true".into(),
            None => match rest.next() {
                Some(v) => v.to_string_lossy().into_owned(),
                None => return Err(format!("flag needs an argument: {arg}")),
            },
        };
        self.set(&spec, &value)
    }

    fn short(
        &mut self,
        arg: &str,
        rest: &mut std::slice::Iter<'_, OsString>,
    ) -> Result<(), String> {
        let mut shorthands = &arg[1..];
        while let Some(c) = shorthands.chars().next() {
            let Some(spec) = self.specs.iter().find(|s| s.short == Some(c)).copied() else {
                return Err(format!("unknown shorthand flag: '{c}' in -{shorthands}"));
            };
            let tail = &shorthands[c.len_utf8()..];
            let (value, next) = if let Some(v) = tail.strip_prefix('=').filter(|v| !v.is_empty()) {
                (v.to_string(), "")
            } else if spec.kind == Kind::Bool {
                ("true".to_string(), tail)
            } else if !tail.is_empty() {
                (tail.to_string(), "")
            } else if let Some(v) = rest.next() {
                (v.to_string_lossy().into_owned(), "")
            } else {
                return Err(format!("flag needs an argument: '{c}' in -{shorthands}"));
            };
            self.set(&spec, &value)?;
            shorthands = next;
        }
        Ok(())
    }
}

/// Parses `args` against `specs`. With `interspersed == false` (Lima's
/// `shell`), parsing stops at the first positional argument.
pub fn parse(specs: &[Spec], args: &[OsString], interspersed: bool) -> Result<Parsed, String> {
    let mut p = Parser {
        specs,
        out: Parsed::default(),
    };
    for spec in specs {
        if !spec.default.is_empty() || spec.kind == Kind::Bool {
            let raw = if spec.kind == Kind::Bool && spec.default.is_empty() {
                "false"
            } else {
                spec.default
            };
            let val = convert(spec, raw, None, true)
                .map_err(|e| format!("bad default for --{}: {e}", spec.name))?;
            p.out.vals.insert(spec.name, val);
        }
    }
    let mut iter = args.iter();
    while let Some(raw) = iter.next() {
        let text = raw.to_string_lossy();
        if !text.starts_with('-') || text == "-" {
            p.out.args.push(raw.clone());
            if !interspersed {
                p.out.args.extend(iter.by_ref().cloned());
            }
            continue;
        }
        if text == "--" {
            p.out.args.extend(iter.by_ref().cloned());
            break;
        }
        if text.starts_with("--") {
            p.long(&text, &mut iter)?;
        } else {
            p.short(&text, &mut iter)?;
        }
    }
    Ok(p.out)
}

/// Whether `--name` (long form, no `=`) takes no value: cobra's
/// `hasNoOptDefVal`, used to find the subcommand among leading flags.
pub fn is_bool(specs: &[Spec], long_or_short: &str) -> bool {
    specs
        .iter()
        .find(|s| {
            s.name == long_or_short
                || (long_or_short.chars().count() == 1 && s.short == long_or_short.chars().next())
        })
        .map(|s| s.kind == Kind::Bool)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[Spec] = &[
        flag("name", Kind::Str),
        flag("force", Kind::Bool).short('f'),
        flag("cpus", Kind::Int),
        flag("memory", Kind::Float32),
        flag("mount", Kind::StrSlice),
        flag("set", Kind::StrArray),
        flag("format", Kind::Str).short('o').default("table"),
        flag("timeout", Kind::Duration).default("10m"),
    ];

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_forms_like_pflag() {
        let p = parse(
            SPECS,
            &os(&[
                "a",
                "--name=x",
                "-f",
                "b",
                "--cpus",
                "0x10",
                "--set",
                ".a=1",
                "--set=.b=2",
            ]),
            true,
        )
        .unwrap();
        assert_eq!(p.args, os(&["a", "b"]));
        assert_eq!(p.str("name"), "x");
        assert!(p.bool("force"));
        assert_eq!(p.int("cpus"), 16);
        assert_eq!(p.list("set"), vec![".a=1", ".b=2"]);
        assert_eq!(p.str("format"), "table");
        assert!(!p.changed("format"));
        assert_eq!(p.secs("timeout"), 600.0);
    }

    #[test]
    fn bool_never_consumes_the_next_argument() {
        let p = parse(SPECS, &os(&["--force", "false"]), true).unwrap();
        assert!(p.bool("force"));
        assert_eq!(p.args, os(&["false"]));
        let p = parse(SPECS, &os(&["--force=false"]), true).unwrap();
        assert!(!p.bool("force"));
        assert!(p.changed("force"));
    }

    #[test]
    fn short_forms() {
        let p = parse(SPECS, &os(&["-fojson"]), true).unwrap();
        assert!(p.bool("force"));
        assert_eq!(p.str("format"), "json");
        let p = parse(SPECS, &os(&["-o=yaml", "-f=false"]), true).unwrap();
        assert_eq!(p.str("format"), "yaml");
        assert!(!p.bool("force"));
    }

    #[test]
    fn stops_at_first_positional_when_not_interspersed() {
        let p = parse(SPECS, &os(&["-f", "inst", "--name", "x", "--", "y"]), false).unwrap();
        assert_eq!(p.args, os(&["inst", "--name", "x", "--", "y"]));
        let p = parse(SPECS, &os(&["--", "inst", "-f"]), false).unwrap();
        assert_eq!(p.args, os(&["inst", "-f"]));
        assert!(!p.bool("force"));
    }

    #[test]
    fn errors_match_pflag() {
        let err = |args: &[&str]| parse(SPECS, &os(args), true).unwrap_err();
        assert_eq!(err(&["--foo"]), "unknown flag: --foo");
        assert_eq!(err(&["-x"]), "unknown shorthand flag: 'x' in -x");
        assert_eq!(err(&["-fx"]), "unknown shorthand flag: 'x' in -x");
        assert_eq!(err(&["--name"]), "flag needs an argument: --name");
        assert_eq!(err(&["-o"]), "flag needs an argument: 'o' in -o");
        assert_eq!(
            err(&["--cpus", "x"]),
            "invalid argument \"x\" for \"--cpus\" flag: strconv.ParseInt: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            err(&["--force=maybe"]),
            "invalid argument \"maybe\" for \"-f, --force\" flag: strconv.ParseBool: parsing \"maybe\": invalid syntax"
        );
        assert_eq!(
            err(&["--timeout", "5"]),
            "invalid argument \"5\" for \"--timeout\" flag: time: missing unit in duration \"5\""
        );
        assert_eq!(err(&["--=x"]), "bad flag syntax: --=x");
    }

    #[test]
    fn string_slices_split_like_csv() {
        let p = parse(
            SPECS,
            &os(&["--mount", "/a,/b", "--mount", "\"/c,d\""]),
            true,
        )
        .unwrap();
        assert_eq!(p.list("mount"), vec!["/a", "/b", "/c,d"]);
        assert!(parse(SPECS, &os(&["--mount", "/a\"b"]), true).is_err());
        let p = parse(SPECS, &os(&["--memory", "2.5"]), true).unwrap();
        assert_eq!(p.value_string("memory"), "2.5");
    }
}
