//! An outside program driven through JSON lines (the GStreamer endpoints in
//! `tests/gst/`): it prints one JSON object per line with an `event`
//! member (`ready` first, `done` last); it is killed if dropped before it
//! finished, so a failed assertion never leaves a pipeline running.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct Script {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    /// The `ready` line.
    pub ready: Value,
}

impl Script {
    /// Runs `python script args…` and waits (15 s at most) for its `ready`
    /// line. With `stdin`, the script waits for [`Script::go`].
    pub fn spawn(python: &Path, script: &str, args: &[String], stdin: bool) -> Script {
        let mut child = Command::new(python)
            .arg(script)
            .args(args)
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let name = Path::new(script)
            .file_name()
            .map_or_else(|| script.to_string(), |n| n.to_string_lossy().into_owned());
        let stdin = child.stdin.take();
        let mut s = Script {
            name,
            child,
            stdin,
            lines,
            ready: Value::Null,
        };
        s.ready = s.next_event(Duration::from_secs(15), "ready");
        s
    }

    /// The next line, which must be `event`; panics with the script's
    /// stderr when none comes within `within`.
    pub fn next_event(&mut self, within: Duration, event: &str) -> Value {
        match self.lines.recv_timeout(within) {
            Ok(line) => {
                let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad line {line:?}: {e}"));
                assert_eq!(v["event"], event, "{v}");
                v
            }
            Err(_) => {
                let _ = self.child.kill();
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("{} gave no {event:?} line; stderr:\n{err}", self.name);
            }
        }
    }

    /// Tells a script spawned with `stdin` to start.
    pub fn go(&mut self) {
        let mut stdin = self.stdin.take().expect("spawned with stdin");
        stdin.write_all(b"go\n").unwrap();
    }

    /// Waits for the `done` line and a successful exit without `error`.
    pub fn finish(mut self, within: Duration) -> Value {
        let done = self.next_event(within, "done");
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{} failed: {done}", self.name);
        assert!(done["error"].is_null(), "{}", done["error"]);
        done
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A python3 with the GStreamer GObject bindings in which every element of
/// `elements` exists (`GST_PYTHON` first, then Debian's `/usr/bin/python3`,
/// whose python3-gi a version manager's `python3` on PATH may shadow).
pub fn gst_python(elements: &[&str]) -> Result<std::path::PathBuf, String> {
    let names = elements.iter().map(|e| format!("'{e}'")).collect::<Vec<_>>().join(", ");
    let check = format!(
        "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstNet', '1.0'); \
         from gi.repository import Gst, GstNet; Gst.init(None); \
         missing = [e for e in ({names},) if Gst.ElementFactory.find(e) is None]; \
         assert not missing, missing"
    );
    let mut candidates: Vec<std::path::PathBuf> = std::env::var_os("GST_PYTHON").map(Into::into).into_iter().collect();
    candidates.extend(["/usr/bin/python3", "python3"].map(Into::into));
    for py in candidates {
        let ok = Command::new(&py)
            .args(["-c", &check])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(py);
        }
    }
    Err(format!(
        "no python3 with the GStreamer GObject bindings (python3-gi, gir1.2-gstreamer-1.0) and the elements {}",
        elements.join(", ")
    ))
}

/// What a GStreamer test does with [`gst_python`]'s answer: the python,
/// or `None` after [`super::missing_program`]'s notice (a failure with
/// `REQUIRE_GSTREAMER=1`).
pub fn gstreamer_or_skip(found: &Result<std::path::PathBuf, String>) -> Option<std::path::PathBuf> {
    match found {
        Ok(py) => Some(py.clone()),
        Err(why) => {
            super::missing_program("GSTREAMER", why, "install with scripts/setup.sh");
            None
        }
    }
}
