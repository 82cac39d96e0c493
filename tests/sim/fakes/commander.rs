//! The option parsing of commander.js, which Claude Code's CLI uses:
//! options may come before or after operands, `--` ends them, a value may be
//! attached (`-sVALUE`, `--scope=VALUE`), and a variadic option (`<env...>`)
//! takes every following word up to the next one that starts with `-`.
//! That last rule is why `claude mcp add -e K=V NAME -- CMD` fails: NAME is
//! taken as a second environment variable.

pub struct Opt {
    pub short: Option<char>,
    pub long: &'static str,
    /// `None` for a flag, else the value's name (`scope`, `env...`).
    pub value: Option<&'static str>,
}

impl Opt {
    fn variadic(&self) -> bool {
        self.value.is_some_and(|v| v.ends_with("..."))
    }

    /// How commander names the option in errors: `-s, --scope <scope>`.
    fn display(&self) -> String {
        let mut s = match self.short {
            Some(c) => format!("-{c}, --{}", self.long),
            None => format!("--{}", self.long),
        };
        if let Some(v) = self.value {
            s.push_str(&format!(" <{v}>"));
        }
        s
    }
}

#[derive(Debug, Default, PartialEq)]
pub struct Parsed {
    /// Every value of every occurrence, by long name (flags get an empty list).
    pub opts: Vec<(&'static str, Vec<String>)>,
    pub operands: Vec<String>,
}

impl Parsed {
    pub fn values(&self, long: &str) -> Vec<String> {
        self.opts
            .iter()
            .filter(|(l, _)| *l == long)
            .flat_map(|(_, v)| v.iter().cloned())
            .collect()
    }

    /// The last value given (commander keeps the last for a plain option).
    pub fn value(&self, long: &str) -> Option<String> {
        self.opts
            .iter()
            .rev()
            .find(|(l, _)| *l == long)
            .and_then(|(_, v)| v.last().cloned())
    }

    pub fn flag(&self, long: &str) -> bool {
        self.opts.iter().any(|(l, _)| *l == long)
    }
}

fn is_option_like(s: &str) -> bool {
    s.len() > 1 && s.starts_with('-')
}

pub fn parse(args: &[String], spec: &[Opt]) -> Result<Parsed, String> {
    let mut out = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            out.operands.extend(args[i..].iter().cloned());
            break;
        }
        if !is_option_like(arg) {
            out.operands.push(arg.clone());
            continue;
        }
        let (opt, inline) = if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let opt = spec.iter().find(|o| o.long == name);
            (opt, inline)
        } else {
            let mut chars = arg[1..].chars();
            let c = chars.next();
            let rest: String = chars.collect();
            let opt = spec.iter().find(|o| o.short.is_some() && o.short == c);
            match opt {
                Some(o) if o.value.is_none() && !rest.is_empty() => {
                    // Combined short flags are not needed here.
                    return Err(format!("error: unknown option '{arg}'"));
                }
                _ => (opt, (!rest.is_empty()).then_some(rest)),
            }
        };
        let Some(opt) = opt else {
            return Err(format!("error: unknown option '{arg}'"));
        };
        if opt.value.is_none() {
            out.opts.push((opt.long, Vec::new()));
            continue;
        }
        let mut values = Vec::new();
        match inline {
            Some(v) => values.push(v),
            None => match args.get(i) {
                Some(v) if !is_option_like(v) && v != "--" => {
                    values.push(v.clone());
                    i += 1;
                }
                _ => {
                    return Err(format!(
                        "error: option '{}' argument missing",
                        opt.display()
                    ))
                }
            },
        }
        if opt.variadic() {
            while let Some(v) = args.get(i) {
                if is_option_like(v) || v == "--" {
                    break;
                }
                values.push(v.clone());
                i += 1;
            }
        }
        out.opts.push((opt.long, values));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &[Opt] = &[
        Opt {
            short: Some('s'),
            long: "scope",
            value: Some("scope"),
        },
        Opt {
            short: Some('e'),
            long: "env",
            value: Some("env..."),
        },
        Opt {
            short: None,
            long: "json",
            value: None,
        },
    ];

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn follows_commander() {
        let p = parse(&words("-s user -e A=1 -- name cmd -y x"), SPEC).unwrap();
        assert_eq!(p.value("scope").as_deref(), Some("user"));
        assert_eq!(p.values("env"), vec!["A=1"]);
        assert_eq!(p.operands, words("name cmd -y x"));
        // The variadic option swallows the name.
        let p = parse(&words("-e A=1 name -- cmd"), SPEC).unwrap();
        assert_eq!(p.values("env"), vec!["A=1", "name"]);
        assert_eq!(p.operands, words("cmd"));
        let p = parse(&words("name --scope=project cmd -sfoo --json"), SPEC).unwrap();
        assert_eq!(p.value("scope").as_deref(), Some("foo"));
        assert!(p.flag("json"));
        assert_eq!(p.operands, words("name cmd"));
        assert_eq!(
            parse(&words("name cmd -y"), SPEC).unwrap_err(),
            "error: unknown option '-y'"
        );
        assert_eq!(
            parse(&words("name -s"), SPEC).unwrap_err(),
            "error: option '-s, --scope <scope>' argument missing"
        );
    }
}
