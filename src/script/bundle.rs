//! A self-extracting bundle: files and the script that uses them, sent as one shell script
//! on `limactl shell`'s stdin. Setup uses it so the template never mounts a host directory of
//! ours: it mounts nothing but the user's setup mounts.

use base64::Engine;

/// Where the bundle unpacks in the guest (cleared by the next boot anyway).
pub const BUNDLE_DIR: &str = "/tmp/claude-vm-setup";

/// The script to pipe into `bash -s`: it unpacks `files` into [`BUNDLE_DIR`] and runs
/// `entry` (one of them) with bash, exiting with its status.
///
/// Everything is inside one function that bash has parsed completely before it runs, and the
/// function's first act is to take stdin away from everything it starts, so no command can
/// read the rest of the bundle as its input.
pub fn bundle(files: &[(String, Vec<u8>)], entry: &str) -> String {
    let mut s = String::from(
        "cvm_bundle() {\n\
         exec </dev/null\n\
         set -eu\n",
    );
    s.push_str(&format!(
        "rm -rf {BUNDLE_DIR}\ninstall -d -m 700 {BUNDLE_DIR}\n"
    ));
    for (name, bytes) in files {
        // Names are ours (`setup-1.sh`, ...): no quoting needed, checked in debug builds.
        debug_assert!(name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        s.push_str(&format!(
            "printf '%s' '{b64}' | base64 -d > {BUNDLE_DIR}/{name}\n"
        ));
    }
    s.push_str(&format!(
        "set +e\nbash {BUNDLE_DIR}/{entry}\ncvm_status=$?\nrm -rf {BUNDLE_DIR}\nreturn $cvm_status\n}}\ncvm_bundle\n"
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    #[test]
    fn unpacks_byte_exact_and_returns_the_entry_status() {
        let odd: Vec<u8> = (0u8..=255).collect();
        let files = vec![
            ("data.bin".to_string(), odd.clone()),
            (
                "main.sh".to_string(),
                format!("cmp -s {BUNDLE_DIR}/data.bin \"$CVM_EXPECT\" && echo same\nread -r x && echo \"stole: $x\"\nexit 5\n").into_bytes(),
            ),
        ];
        let expect = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(expect.path(), &odd).unwrap();
        let text = bundle(&files, "main.sh");
        // Extra input after the bundle must not reach the scripts it runs.
        let mut child = Command::new("bash")
            .arg("-s")
            .env("CVM_EXPECT", expect.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = text.into_bytes();
        input.extend_from_slice(b"echo this line must never run\n");
        child.stdin.take().unwrap().write_all(&input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(5));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "same\n");
        assert!(
            !std::path::Path::new(BUNDLE_DIR).exists(),
            "unpacked files are removed"
        );
    }
}
