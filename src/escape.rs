//! Text that the guest, Lima or a release may have chosen, made safe to print (pure: the
//! plans and the Lima client use it without the UI).

/// Makes text that the guest, Lima or a release may have chosen safe to print: control
/// characters (ESC, CR, backspace, C1 codes) and bidirectional overrides become visible
/// escapes, so a file name cannot move the cursor, erase a line or reorder what follows.
/// `keep_newlines` keeps `\n` and tabs (a multi-line message); single names escape them too.
pub fn escape_text(text: &str, keep_newlines: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\t' if keep_newlines => out.push(c),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || is_bidi_control(c) => {
                let n = u32::from(c);
                if n < 0x100 {
                    out.push_str(&format!("\\x{n:02x}"));
                } else {
                    out.push_str(&format!("\\u{{{n:04x}}}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// One name or value on one line.
pub fn escape(text: &str) -> String {
    escape_text(text, false)
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}
