//! The subset of yq that Lima's edit flags produce and that `--set` users
//! write: `PATH = VALUE`, `PATH += VALUE`, `del(PATH)`, joined with `|`.
//! PATH is `.a.b[0].c[]`; VALUE is a YAML flow value (so any JSON), a path,
//! or a sum of those (`[...] + .mounts`).

use serde_json::{Map, Number, Value};

#[derive(Clone, Debug, PartialEq)]
enum Seg {
    Key(String),
    Index(i64),
    All,
}

#[derive(Debug)]
enum Term {
    Lit(Value),
    Path(Vec<Seg>),
}

#[derive(Debug)]
enum Update {
    Set(Vec<Seg>, Vec<Term>),
    Add(Vec<Seg>, Vec<Term>),
    Del(Vec<Seg>),
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

type PResult<T> = Result<T, String>;

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(c) if c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, s: &str) -> bool {
        let n = s.chars().count();
        if self.chars[self.pos..].iter().take(n).copied().eq(s.chars()) {
            self.pos += n;
            true
        } else {
            false
        }
    }

    fn err<T>(&self, what: &str) -> PResult<T> {
        Err(format!("{what} at position {}", self.pos + 1))
    }

    fn pipeline(&mut self) -> PResult<Vec<Update>> {
        let mut updates = vec![self.update()?];
        loop {
            self.skip_ws();
            match self.peek() {
                None => return Ok(updates),
                Some('|') if self.peek_at(1) != Some('=') => {
                    self.pos += 1;
                    updates.push(self.update()?);
                }
                Some(_) => return self.err("unexpected text"),
            }
        }
    }

    fn update(&mut self) -> PResult<Update> {
        self.skip_ws();
        if self.eat("del(") {
            let path = self.path()?;
            self.skip_ws();
            if !self.eat(")") {
                return self.err("expected ')'");
            }
            return Ok(Update::Del(path));
        }
        let path = self.path()?;
        self.skip_ws();
        if self.eat("+=") {
            return Ok(Update::Add(path, self.sum()?));
        }
        if self.eat("|=") {
            return self.err("the simulator does not support '|='");
        }
        if self.eat("=") {
            return Ok(Update::Set(path, self.sum()?));
        }
        self.err("expected '=', '+=' or del(...)")
    }

    fn ident(&mut self) -> String {
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c.is_alphanumeric() || c == '_') {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    fn path(&mut self) -> PResult<Vec<Seg>> {
        self.skip_ws();
        if self.peek() != Some('.') {
            return self.err("expected a path starting with '.'");
        }
        let mut segs = Vec::new();
        let mut first = true;
        loop {
            match self.peek() {
                Some('.') => {
                    self.pos += 1;
                    match self.peek() {
                        Some('"') => segs.push(Seg::Key(self.double_quoted()?)),
                        Some('[') => {}
                        Some(c) if c.is_alphanumeric() || c == '_' => {
                            segs.push(Seg::Key(self.ident()))
                        }
                        _ if first => {}
                        _ => return self.err("expected a key after '.'"),
                    }
                }
                Some('[') => {
                    self.pos += 1;
                    self.skip_ws();
                    if self.eat("]") {
                        segs.push(Seg::All);
                        continue;
                    }
                    let seg = match self.peek() {
                        Some('"') => Seg::Key(self.double_quoted()?),
                        _ => {
                            let start = self.pos;
                            if self.peek() == Some('-') {
                                self.pos += 1;
                            }
                            while matches!(self.peek(), Some(c) if c.is_ascii_digit()) {
                                self.pos += 1;
                            }
                            let text: String = self.chars[start..self.pos].iter().collect();
                            match text.parse() {
                                Ok(i) => Seg::Index(i),
                                Err(_) => return self.err("expected an index"),
                            }
                        }
                    };
                    self.skip_ws();
                    if !self.eat("]") {
                        return self.err("expected ']'");
                    }
                    segs.push(seg);
                }
                _ => return Ok(segs),
            }
            first = false;
        }
    }

    fn sum(&mut self) -> PResult<Vec<Term>> {
        let mut terms = vec![self.term()?];
        loop {
            self.skip_ws();
            if self.peek() == Some('+') && self.peek_at(1) != Some('=') {
                self.pos += 1;
                terms.push(self.term()?);
            } else {
                return Ok(terms);
            }
        }
    }

    fn term(&mut self) -> PResult<Term> {
        self.skip_ws();
        match self.peek() {
            Some('.') => Ok(Term::Path(self.path()?)),
            Some('(') => {
                self.pos += 1;
                let value = self.value(false)?;
                self.skip_ws();
                if !self.eat(")") {
                    return self.err("expected ')'");
                }
                Ok(Term::Lit(value))
            }
            None => self.err("expected a value"),
            _ => Ok(Term::Lit(self.value(false)?)),
        }
    }

    fn value(&mut self, in_flow: bool) -> PResult<Value> {
        self.skip_ws();
        match self.peek() {
            Some('{') => self.flow_map(),
            Some('[') => self.flow_seq(),
            Some('"') => Ok(Value::String(self.double_quoted()?)),
            Some('\'') => Ok(Value::String(self.single_quoted()?)),
            Some(_) => {
                let text = self.plain(in_flow);
                if text.is_empty() {
                    return self.err("expected a value");
                }
                Ok(resolve_plain(&text))
            }
            None => self.err("expected a value"),
        }
    }

    fn plain(&mut self, in_flow: bool) -> String {
        let start = self.pos;
        while let Some(c) = self.peek() {
            let stop = if in_flow {
                ",[]{}".contains(c)
                    || (c == ':' && matches!(self.peek_at(1), None | Some(' ' | ',' | ']' | '}')))
            } else {
                c.is_whitespace() || "|()[]{},".contains(c)
            };
            if stop {
                break;
            }
            self.pos += 1;
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        text.trim_end().to_string()
    }

    fn flow_map(&mut self) -> PResult<Value> {
        self.pos += 1;
        let mut map = Map::new();
        loop {
            self.skip_ws();
            if self.eat("}") {
                return Ok(Value::Object(map));
            }
            let key = match self.value(true)? {
                Value::String(s) => s,
                Value::Null => "null".into(),
                other => other.to_string(),
            };
            self.skip_ws();
            if !self.eat(":") {
                return self.err("expected ':' in a map");
            }
            let value = self.value(true)?;
            map.insert(key, value);
            self.skip_ws();
            if self.eat(",") {
                continue;
            }
            if self.eat("}") {
                return Ok(Value::Object(map));
            }
            return self.err("expected ',' or '}'");
        }
    }

    fn flow_seq(&mut self) -> PResult<Value> {
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            if self.eat("]") {
                return Ok(Value::Array(items));
            }
            items.push(self.value(true)?);
            self.skip_ws();
            if self.eat(",") {
                continue;
            }
            if self.eat("]") {
                return Ok(Value::Array(items));
            }
            return self.err("expected ',' or ']'");
        }
    }

    fn hex_escape(&mut self, digits: usize) -> PResult<char> {
        let text: String = self.chars[self.pos..].iter().take(digits).collect();
        self.pos += digits;
        u32::from_str_radix(&text, 16)
            .ok()
            .and_then(char::from_u32)
            .ok_or_else(|| format!("invalid escape \\{text}"))
    }

    fn double_quoted(&mut self) -> PResult<String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return self.err("unterminated string");
            };
            self.pos += 1;
            match c {
                '"' => return Ok(out),
                '\\' => {
                    let Some(e) = self.peek() else {
                        return self.err("unterminated string");
                    };
                    self.pos += 1;
                    let decoded = match e {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        '0' => '\0',
                        'a' => '\u{7}',
                        'b' => '\u{8}',
                        'e' => '\u{1b}',
                        'f' => '\u{c}',
                        'v' => '\u{b}',
                        '/' | '\\' | '"' | ' ' => e,
                        'x' => self.hex_escape(2)?,
                        'u' => self.surrogate_aware_u()?,
                        'U' => self.hex_escape(8)?,
                        _ => return self.err("invalid escape"),
                    };
                    out.push(decoded);
                }
                c => out.push(c),
            }
        }
    }

    // JSON encodes non-BMP characters as surrogate pairs.
    fn surrogate_aware_u(&mut self) -> PResult<char> {
        let text: String = self.chars[self.pos..].iter().take(4).collect();
        let hi = u32::from_str_radix(&text, 16).map_err(|_| format!("invalid escape \\u{text}"))?;
        self.pos += 4;
        if (0xD800..0xDC00).contains(&hi) && self.eat("\\u") {
            let text: String = self.chars[self.pos..].iter().take(4).collect();
            let lo =
                u32::from_str_radix(&text, 16).map_err(|_| format!("invalid escape \\u{text}"))?;
            self.pos += 4;
            let code = 0x10000 + ((hi - 0xD800) << 10) + (lo.wrapping_sub(0xDC00) & 0x3FF);
            return char::from_u32(code).ok_or_else(|| "invalid surrogate pair".to_string());
        }
        char::from_u32(hi).ok_or_else(|| format!("invalid escape \\u{text}"))
    }

    fn single_quoted(&mut self) -> PResult<String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return self.err("unterminated string"),
                Some('\'') if self.peek_at(1) == Some('\'') => {
                    self.pos += 2;
                    out.push('\'');
                }
                Some('\'') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(c) => {
                    self.pos += 1;
                    out.push(c);
                }
            }
        }
    }
}

/// YAML 1.2 core-schema resolution of a plain scalar.
fn resolve_plain(text: &str) -> Value {
    match text {
        "null" | "Null" | "NULL" | "~" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
        if let Ok(i) = text.parse::<i64>() {
            return Value::Number(i.into());
        }
    }
    if let Some(hex) = text.strip_prefix("0x") {
        if let Ok(i) = i64::from_str_radix(hex, 16) {
            return Value::Number(i.into());
        }
    }
    if let Some(oct) = text.strip_prefix("0o") {
        if let Ok(i) = i64::from_str_radix(oct, 8) {
            return Value::Number(i.into());
        }
    }
    let looks_float = digits
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit() || c == '.')
        && digits
            .chars()
            .all(|c| c.is_ascii_digit() || ".eE+-".contains(c));
    if looks_float {
        if let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64) {
            return Value::Number(n);
        }
    }
    Value::String(text.to_string())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "!!null",
        Value::Bool(_) => "!!bool",
        Value::Number(n) if n.is_f64() => "!!float",
        Value::Number(_) => "!!int",
        Value::String(_) => "!!str",
        Value::Array(_) => "!!seq",
        Value::Object(_) => "!!map",
    }
}

/// yq's `+`.
fn add(a: Value, b: Value) -> Result<Value, String> {
    Ok(match (a, b) {
        (Value::Null, b) => b,
        (a, Value::Null) => a,
        (Value::Array(mut x), Value::Array(y)) => {
            x.extend(y);
            Value::Array(x)
        }
        (Value::Object(mut x), Value::Object(y)) => {
            x.extend(y);
            Value::Object(x)
        }
        (Value::String(x), Value::String(y)) => Value::String(x + &y),
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => Value::Number((i + j).into()),
            _ => {
                let sum = x.as_f64().unwrap_or(0.0) + y.as_f64().unwrap_or(0.0);
                Number::from_f64(sum)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            }
        },
        (a, b) => {
            return Err(format!(
                "{} () cannot be added to a {} ()",
                type_name(&b),
                type_name(&a)
            ))
        }
    })
}

fn get(doc: &Value, path: &[Seg]) -> Vec<Value> {
    let Some((seg, rest)) = path.split_first() else {
        return vec![doc.clone()];
    };
    match (seg, doc) {
        (Seg::Key(k), Value::Object(m)) => get(m.get(k).unwrap_or(&Value::Null), rest),
        (Seg::Index(i), Value::Array(a)) => {
            let idx = if *i < 0 { a.len() as i64 + i } else { *i };
            let item = usize::try_from(idx).ok().and_then(|i| a.get(i));
            get(item.unwrap_or(&Value::Null), rest)
        }
        (Seg::All, Value::Array(a)) => a.iter().flat_map(|v| get(v, rest)).collect(),
        (Seg::All, Value::Object(m)) => m.values().flat_map(|v| get(v, rest)).collect(),
        (Seg::All, _) => Vec::new(),
        _ => get(&Value::Null, rest),
    }
}

fn describe(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => s.push_str(&format!(".{k}")),
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
            Seg::All => s.push_str("[]"),
        }
    }
    if s.is_empty() {
        ".".into()
    } else {
        s
    }
}

fn update_at(
    doc: &mut Value,
    path: &[Seg],
    done: &[Seg],
    f: &dyn Fn(Value) -> Result<Value, String>,
) -> Result<(), String> {
    let Some((seg, rest)) = path.split_first() else {
        let old = std::mem::take(doc);
        *doc = f(old)?;
        return Ok(());
    };
    let here = [done, std::slice::from_ref(seg)].concat();
    match seg {
        Seg::Key(k) => {
            if doc.is_null() {
                *doc = Value::Object(Map::new());
            }
            let Value::Object(m) = doc else {
                return Err(format!(
                    "cannot index {} with {}: it is a {}",
                    describe(done),
                    k,
                    type_name(doc)
                ));
            };
            update_at(m.entry(k.clone()).or_insert(Value::Null), rest, &here, f)
        }
        Seg::Index(i) => {
            if doc.is_null() {
                *doc = Value::Array(Vec::new());
            }
            let Value::Array(a) = doc else {
                return Err(format!(
                    "cannot index {} with [{i}]: it is a {}",
                    describe(done),
                    type_name(doc)
                ));
            };
            let idx = if *i < 0 { a.len() as i64 + i } else { *i };
            let idx = usize::try_from(idx)
                .map_err(|_| format!("index {i} out of range for {}", describe(done)))?;
            if a.len() <= idx {
                a.resize(idx + 1, Value::Null);
            }
            update_at(&mut a[idx], rest, &here, f)
        }
        Seg::All => match doc {
            Value::Array(a) => a.iter_mut().try_for_each(|v| update_at(v, rest, &here, f)),
            Value::Object(m) => m
                .values_mut()
                .try_for_each(|v| update_at(v, rest, &here, f)),
            _ => Ok(()),
        },
    }
}

fn delete(doc: &mut Value, path: &[Seg]) {
    let Some((last, parent)) = path.split_last() else {
        *doc = Value::Null;
        return;
    };
    let mut parents = vec![];
    collect_mut(doc, parent, &mut parents);
    for p in parents {
        match (last, p) {
            (Seg::Key(k), Value::Object(m)) => {
                m.remove(k);
            }
            (Seg::Index(i), Value::Array(a)) => {
                let idx = if *i < 0 { a.len() as i64 + i } else { *i };
                if let Some(idx) = usize::try_from(idx).ok().filter(|i| *i < a.len()) {
                    a.remove(idx);
                }
            }
            (Seg::All, Value::Array(a)) => a.clear(),
            (Seg::All, Value::Object(m)) => m.clear(),
            _ => {}
        }
    }
}

fn collect_mut<'a>(doc: &'a mut Value, path: &[Seg], out: &mut Vec<&'a mut Value>) {
    let Some((seg, rest)) = path.split_first() else {
        out.push(doc);
        return;
    };
    match (seg, doc) {
        (Seg::Key(k), Value::Object(m)) => {
            if let Some(v) = m.get_mut(k) {
                collect_mut(v, rest, out);
            }
        }
        (Seg::Index(i), Value::Array(a)) => {
            let idx = if *i < 0 { a.len() as i64 + i } else { *i };
            if let Some(v) = usize::try_from(idx).ok().and_then(|i| a.get_mut(i)) {
                collect_mut(v, rest, out);
            }
        }
        (Seg::All, Value::Array(a)) => a.iter_mut().for_each(|v| collect_mut(v, rest, out)),
        (Seg::All, Value::Object(m)) => m.values_mut().for_each(|v| collect_mut(v, rest, out)),
        _ => {}
    }
}

fn eval_sum(root: &Value, terms: &[Term]) -> Result<Value, String> {
    let mut acc = Value::Null;
    for term in terms {
        let v = match term {
            Term::Lit(v) => v.clone(),
            Term::Path(p) => get(root, p).into_iter().next().unwrap_or(Value::Null),
        };
        acc = add(acc, v)?;
    }
    Ok(acc)
}

/// Applies `expr` to `doc` (like `yq -i EXPR`).
pub fn evaluate(expr: &str, doc: &Value) -> Result<Value, String> {
    let mut parser = Parser {
        chars: expr.chars().collect(),
        pos: 0,
    };
    let updates = parser
        .pipeline()
        .map_err(|e| format!("invalid yq expression {}: {e}", crate::gofmt::quote(expr)))?;
    let mut doc = doc.clone();
    for update in updates {
        match update {
            Update::Set(path, terms) => {
                let value = eval_sum(&doc, &terms)?;
                update_at(&mut doc, &path, &[], &|_| Ok(value.clone()))?;
            }
            Update::Add(path, terms) => {
                let value = eval_sum(&doc, &terms)?;
                update_at(&mut doc, &path, &[], &|old| add(old, value.clone()))?;
            }
            Update::Del(path) => delete(&mut doc, &path),
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(expr: &str, doc: Value) -> Value {
        evaluate(expr, &doc).unwrap()
    }

    #[test]
    fn assignments_create_paths() {
        assert_eq!(eval(".cpus = 2", json!({})), json!({"cpus": 2}));
        assert_eq!(
            eval(".ssh.forwardAgent = true", json!({})),
            json!({"ssh": {"forwardAgent": true}})
        );
        assert_eq!(eval(".a[1] = \"x\"", json!({})), json!({"a": [null, "x"]}));
        assert_eq!(
            eval(".disk= \"10GiB\"", json!({})),
            json!({"disk": "10GiB"})
        );
        assert_eq!(
            eval(".mounts = null", json!({"mounts": [1]})),
            json!({"mounts": null})
        );
        assert_eq!(
            eval(".env.\"A-B\" = bare", json!({})),
            json!({"env": {"A-B": "bare"}})
        );
        assert_eq!(eval(".x = 'it''s'", json!({})), json!({"x": "it's"}));
        assert_eq!(
            eval(".x = 1.5 | .y = -3 | .z = ~", json!({})),
            json!({"x": 1.5, "y": -3, "z": null})
        );
    }

    #[test]
    fn lima_editflag_expressions() {
        let doc = json!({"mounts": [{"location": "~"}]});
        let out = eval(
            ".mounts = [{\"location\": \"/p\", \"mountPoint\": \"/p\", \"writable\": true}] + .mounts",
            doc,
        );
        assert_eq!(
            out,
            json!({"mounts": [{"location": "/p", "mountPoint": "/p", "writable": true}, {"location": "~"}]})
        );
        let out = eval(".mounts[].writable = true", out);
        assert_eq!(out["mounts"][1]["writable"], json!(true));
        let out = eval(
            ".vmOpts.vz.rosetta.enabled = true | .vmOpts.vz.rosetta.binfmt = true",
            json!({}),
        );
        assert_eq!(out["vmOpts"]["vz"]["rosetta"]["binfmt"], json!(true));
        let out = eval(
            ".portForwards += [{\"guestPort\": \"80\", \"hostPort\": \"8080\", \"static\": false}]",
            json!({"portForwards": []}),
        );
        assert_eq!(out["portForwards"][0]["hostPort"], json!("8080"));
    }

    #[test]
    fn flow_yaml_beyond_json() {
        assert_eq!(
            eval(".mounts = [{location: /a b, writable: true}]", json!({})),
            json!({"mounts": [{"location": "/a b", "writable": true}]})
        );
        assert_eq!(
            eval(".e = {K: \"\\u00e9\\x41\"}", json!({})),
            json!({"e": {"K": "éA"}})
        );
    }

    #[test]
    fn deletes_and_appends() {
        assert_eq!(
            eval("del(.a.b)", json!({"a": {"b": 1, "c": 2}})),
            json!({"a": {"c": 2}})
        );
        assert_eq!(
            eval(".l += [3]", json!({"l": [1, 2]})),
            json!({"l": [1, 2, 3]})
        );
        assert_eq!(eval(".s += \"b\"", json!({"s": "a"})), json!({"s": "ab"}));
        assert_eq!(
            eval(".n = .m", json!({"m": {"k": 1}})),
            json!({"m": {"k": 1}, "n": {"k": 1}})
        );
    }

    #[test]
    fn rejects_what_it_cannot_do() {
        assert!(evaluate(".cpus", &json!({})).is_err());
        assert!(evaluate(".a = ", &json!({})).is_err());
        assert!(evaluate(".a |= 1", &json!({})).is_err());
        assert!(evaluate(".a = [1", &json!({})).is_err());
        assert!(evaluate(".a.b = 1", &json!({"a": "str"})).is_err());
        assert!(evaluate(".l += {}", &json!({"l": [1]})).is_err());
    }
}
