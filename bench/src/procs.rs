//! The server processes a benchmark starts: finding their programs, starting
//! them with their output in a log file, and stopping them. Every child is
//! killed when its handle is dropped (an error or a panic unwinding through
//! the session) and gets SIGKILL from the kernel if the benchmark itself dies
//! (`PR_SET_PDEATHSIG`), so no server outlives a run.

use std::ffi::OsStr;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::error::{BenchError, io_err};

/// How long a server gets to stop after SIGTERM before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest a helper command (such as making certificates) may run.
pub const HELPER_TIMEOUT: Duration = Duration::from_secs(60);

/// Finds `program`: a path as given, or a name looked up in `PATH`.
pub fn find_program(program: &Path, hint: &str) -> Result<PathBuf, BenchError> {
    let missing = || BenchError::MissingProgram {
        program: program.display().to_string(),
        hint: hint.to_string(),
    };
    if program.components().count() > 1 {
        return if program.is_file() {
            Ok(program.to_path_buf())
        } else {
            Err(missing())
        };
    }
    let path = std::env::var_os("PATH").ok_or_else(missing)?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .ok_or_else(missing)
}

/// One running server (or supervisor) process.
#[derive(Debug)]
pub struct ServerProcess {
    label: String,
    log: PathBuf,
    child: Child,
}

impl ServerProcess {
    /// Starts `program args`, stdout and stderr appended to `log`.
    pub fn spawn<I, S>(label: &str, program: &Path, args: I, log: &Path) -> Result<Self, BenchError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(io_err("cannot open", log))?;
        let err = out.try_clone().map_err(io_err("cannot open", log))?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        // SAFETY: the closure makes one async-signal-safe system call.
        unsafe {
            command.pre_exec(|| nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from));
        }
        let child = command.spawn().map_err(io_err("cannot start", program))?;
        Ok(Self {
            label: label.to_string(),
            log: log.to_path_buf(),
            child,
        })
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Where the process writes its output.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// An error if the process has exited.
    pub fn check_running(&mut self) -> Result<(), BenchError> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(self.exited(status.to_string())),
            Err(e) => Err(self.exited(e.to_string())),
        }
    }

    fn exited(&self, status: String) -> BenchError {
        BenchError::Exited {
            what: self.label.clone(),
            status,
            log: self.log.clone(),
        }
    }

    /// Kills the process (SIGKILL) and waits until it is reaped.
    pub async fn kill(mut self) {
        if let Err(e) = self.child.kill().await {
            eprintln!("cannot kill {}: {e}", self.label);
        }
    }

    /// Asks the process to stop (SIGTERM) and waits for it, killing it
    /// after [`STOP_TIMEOUT`].
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
        if tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await.is_err() {
            eprintln!("{} did not stop within {STOP_TIMEOUT:?}; killing it", self.label);
            let _ = self.child.kill().await;
        }
    }
}

/// Sends `signal` to process `pid`; a process that is already gone is no error.
pub fn signal(pid: u32, signal: Signal) {
    let Ok(raw) = i32::try_from(pid) else {
        return;
    };
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), signal);
}

/// True once process `pid` has exited and its parent has reaped it (a
/// zombie, exited but not yet reaped, is not gone: its parent has not seen
/// the exit yet).
pub fn process_gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

/// Runs a helper command to its end and returns its standard output.
pub async fn run_helper<I, S>(what: &str, program: &Path, args: I) -> Result<String, BenchError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null()).kill_on_drop(true);
    let failed = |detail: String| BenchError::Command {
        what: what.to_string(),
        detail,
    };
    let output = tokio::time::timeout(HELPER_TIMEOUT, command.output())
        .await
        .map_err(|_| failed(format!("no answer within {HELPER_TIMEOUT:?}")))?
        .map_err(|e| failed(format!("cannot start {}: {e}", program.display())))?;
    if !output.status.success() {
        return Err(failed(format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Calls `check` every `poll` until it yields a value, fails, or `timeout`
/// passes; `on_timeout` makes the error then.
pub async fn poll_until<T, F, Fut>(
    timeout: Duration,
    poll: Duration,
    mut check: F,
    on_timeout: impl FnOnce() -> BenchError,
) -> Result<T, BenchError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, BenchError>>,
{
    assert!(
        !poll.is_zero() && poll < timeout,
        "poll {poll:?} must be shorter than {timeout:?}"
    );
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(on_timeout());
        }
        tokio::time::sleep(poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_in_path_or_refused_with_the_hint() {
        assert!(find_program(Path::new("sh"), "").is_ok());
        let error = find_program(Path::new("no-such-program-here"), "install it").unwrap_err();
        assert!(error.to_string().contains("install it"), "{error}");
        assert!(find_program(Path::new("/no/such/dir/prog"), "x").is_err());
    }

    #[tokio::test]
    async fn a_stopped_server_is_gone_and_an_exited_one_is_reported() {
        let dir = tempfile::TempDir::new().unwrap();
        let log = dir.path().join("sleep.log");
        let server = ServerProcess::spawn("sleeper", Path::new("/bin/sleep"), ["30"], &log).unwrap();
        let pid = server.pid().unwrap();
        assert!(!process_gone(pid), "it runs");
        server.stop().await;
        assert!(crate::measure::cpu_ticks(pid).is_none(), "the process is reaped");
        assert!(process_gone(pid));

        let killed = ServerProcess::spawn("sleeper", Path::new("/bin/sleep"), ["30"], &log).unwrap();
        let pid = killed.pid().unwrap();
        killed.kill().await;
        assert!(process_gone(pid), "a killed process is reaped");

        let mut quick = ServerProcess::spawn("quick", Path::new("/bin/true"), Vec::<&str>::new(), &log).unwrap();
        let exited = poll_until(
            Duration::from_secs(10),
            Duration::from_millis(10),
            || {
                let result = quick.check_running();
                async move {
                    match result {
                        Ok(()) => Ok(None),
                        Err(e) => Ok(Some(e)),
                    }
                }
            },
            || BenchError::Interrupted,
        )
        .await
        .unwrap();
        assert!(matches!(exited, BenchError::Exited { .. }), "{exited}");
    }

    #[tokio::test]
    async fn a_helper_that_fails_says_why() {
        let out = run_helper("echo", Path::new("/bin/echo"), ["hello"]).await.unwrap();
        assert_eq!(out.trim(), "hello");
        let error = run_helper("false", Path::new("/bin/false"), Vec::<&str>::new())
            .await
            .unwrap_err();
        assert!(error.to_string().contains("false failed"), "{error}");
    }
}
