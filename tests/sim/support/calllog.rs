//! `LIMA_SIM_LOG`: one JSON line per invocation start and normal end, so
//! tests can assert which `limactl` calls a program made.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::sys;

#[derive(Serialize)]
struct StartRecord<'a> {
    event: &'a str,
    pid: i32,
    ppid: i32,
    argv: Vec<String>,
    time: f64,
}

#[derive(Serialize)]
struct EndRecord<'a> {
    event: &'a str,
    pid: i32,
    exit: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    isolation: Option<&'a str>,
    time: f64,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn target() -> Option<PathBuf> {
    std::env::var_os("LIMA_SIM_LOG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

// One locked append per line keeps lines whole under concurrent writers.
fn append(line: &str) -> Result<(), String> {
    let Some(path) = target() else {
        return Ok(());
    };
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| sys::path_error("open", &path, &e))?;
    let _lock = sys::FileLock::exclusive(&file).map_err(|e| sys::path_error("flock", &path, &e))?;
    file.write_all(format!("{line}\n").as_bytes())
        .map_err(|e| sys::path_error("write", &path, &e))
}

pub fn start(argv: &[OsString]) -> Result<(), String> {
    let record = StartRecord {
        event: "start",
        pid: sys::getpid(),
        ppid: sys::getppid(),
        argv: argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        time: now(),
    };
    append(&serde_json::to_string(&record).map_err(|e| e.to_string())?)
}

pub fn end(exit: i32, isolation: Option<&str>) -> Result<(), String> {
    let record = EndRecord {
        event: "end",
        pid: sys::getpid(),
        exit,
        isolation,
        time: now(),
    };
    append(&serde_json::to_string(&record).map_err(|e| e.to_string())?)
}
