//! Child processes of the benchmark (redis-server, the tracker's worker and server) and what
//! `/proc` says about them: CPU time and memory.
//!
//! Every child is held by a [`Proc`] guard that kills and reaps it when dropped, so an error or
//! Ctrl-C in the benchmark never leaves a Redis, a worker or a server behind. Should the
//! benchmark die without unwinding (SIGKILL from a CI timeout), the kernel kills the children
//! too (`PR_SET_PDEATHSIG`). A child run to its end ([`Measured`], a `stats-tracker rebuild`)
//! is reaped with `wait4`, which gives its CPU time and peak RSS however short it was.

use std::fs::{self, File};
use std::net::TcpListener;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A running child process, killed when dropped.
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `command` with its stdout and stderr going to the file `log`.
    ///
    /// Spawn from the thread that drives the benchmark (the runtime's `block_on` thread): the
    /// kernel's "parent died" signal follows the *thread* that forked, and that thread lives as
    /// long as the benchmark does.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Self> {
        let out = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = out
            .try_clone()
            .with_context(|| format!("cannot reopen {}", log.display()))?;
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        die_with_parent(&mut command);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {name} ({:?})", command.get_program()))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An error carrying the end of the process's log if it has exited.
    pub fn ensure_running(&mut self) -> Result<()> {
        if let Some(status) = self
            .child
            .try_wait()
            .with_context(|| format!("cannot check on {}", self.name))?
        {
            bail!(
                "{} exited ({status}); last lines of {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 20)
            );
        }
        Ok(())
    }

    /// CPU time and memory so far.
    pub fn stats(&self) -> Result<ProcStats> {
        ProcStats::read(&format!("/proc/{}", self.pid()))
            .with_context(|| format!("cannot read /proc for {}", self.name))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SIGKILL: nothing these processes hold is worth keeping (the Redis is private and
        // saves nothing), and it cannot be ignored.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Has the kernel kill the child `command` starts when the thread that started it ends
/// (`PR_SET_PDEATHSIG`).
fn die_with_parent(command: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec; prctl is async-signal-safe
    // and touches no memory shared with the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A child process run to its end, reaped with `wait4` for its resource use; killed (and
/// reaped) if dropped before it ended.
pub struct Measured {
    name: String,
    pid: libc::pid_t,
    started: Instant,
    reaped: bool,
    stderr: PathBuf,
}

/// How a [`Measured`] child ended and what it used.
#[derive(Debug, Clone, Copy)]
pub struct Finished {
    pub status: ExitStatus,
    /// From just before it was started until it was seen to have exited (within a poll).
    pub wall: Duration,
    /// User + system CPU time of all its threads (`wait4`'s rusage).
    pub cpu: Duration,
    /// Peak resident set size, KiB (`ru_maxrss`).
    pub peak_rss_kib: u64,
}

impl Measured {
    /// Starts `command` with its stdout going to the file `stdout` and its stderr to `stderr`.
    /// Spawn from the benchmark's driving thread, as [`Proc::spawn`].
    pub fn spawn(name: &str, mut command: Command, stdout: &Path, stderr: &Path) -> Result<Self> {
        let out =
            File::create(stdout).with_context(|| format!("cannot create {}", stdout.display()))?;
        let err =
            File::create(stderr).with_context(|| format!("cannot create {}", stderr.display()))?;
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        die_with_parent(&mut command);
        let started = Instant::now();
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {name} ({:?})", command.get_program()))?;
        let pid = libc::pid_t::try_from(child.id()).context("a child pid out of range")?;
        // `child` is dropped without waiting: this guard reaps the process with wait4.
        drop(child);
        Ok(Self {
            name: name.to_owned(),
            pid,
            started,
            reaped: false,
            stderr: stderr.to_owned(),
        })
    }

    /// The child's status and resource use if it has exited (then reaped), `None` while it runs.
    pub fn try_finish(&mut self) -> Result<Option<Finished>> {
        if self.reaped {
            bail!("{} was already reaped", self.name);
        }
        let mut status: libc::c_int = 0;
        // SAFETY: an all-zero rusage is a valid value of the plain C struct wait4 fills in.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `status` and `usage` are valid for writes; WNOHANG never blocks.
        let reaped = unsafe { libc::wait4(self.pid, &mut status, libc::WNOHANG, &mut usage) };
        if reaped == 0 {
            return Ok(None);
        }
        if reaped < 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("cannot wait for {}", self.name));
        }
        let wall = self.started.elapsed();
        self.reaped = true;
        let time = |tv: libc::timeval| {
            Duration::from_secs(tv.tv_sec.unsigned_abs())
                + Duration::from_micros(tv.tv_usec.unsigned_abs())
        };
        Ok(Some(Finished {
            status: ExitStatus::from_raw(status),
            wall,
            cpu: time(usage.ru_utime) + time(usage.ru_stime),
            peak_rss_kib: usage.ru_maxrss.unsigned_abs(),
        }))
    }

    /// The last `lines` lines of its stderr, for an error message.
    pub fn stderr_tail(&self, lines: usize) -> String {
        tail(&self.stderr, lines)
    }
}

impl Drop for Measured {
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        let mut status: libc::c_int = 0;
        // SAFETY: the pid is our unreaped child, so it names no other process; a blocking
        // wait4 after SIGKILL returns as soon as the kernel has ended it.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, &mut status, 0);
        }
    }
}

/// What `/proc/<pid>` says about a process.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcStats {
    /// User + system CPU time of all its threads.
    pub cpu: Duration,
    /// Peak resident set size (`VmHWM`), KiB.
    pub peak_rss_kib: u64,
    /// Current resident set size (`VmRSS`), KiB.
    pub rss_kib: u64,
}

impl ProcStats {
    /// The benchmark's own process (the load generator).
    pub fn current() -> Result<Self> {
        Self::read("/proc/self").context("cannot read /proc/self")
    }

    /// The statistics of the process `pid`.
    pub fn of_pid(pid: u32) -> Result<Self> {
        Self::read(&format!("/proc/{pid}"))
    }

    fn read(dir: &str) -> Result<Self> {
        let stat = fs::read_to_string(format!("{dir}/stat"))?;
        // The command name (field 2) may hold spaces and ')': fields resume after the last ')'.
        let rest = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .context("malformed stat")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of proc(5); `rest` starts at field 3.
        let ticks = |index: usize| -> Result<u64> {
            fields
                .get(index)
                .and_then(|field| field.parse().ok())
                .context("malformed stat")
        };
        let ticks = ticks(11)? + ticks(12)?;
        let cpu = Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second() as f64);

        let status = fs::read_to_string(format!("{dir}/status"))?;
        let kib = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        Ok(Self {
            cpu,
            peak_rss_kib: kib("VmHWM:"),
            rss_kib: kib("VmRSS:"),
        })
    }
}

/// CPU time all processes of the machine have used since boot (`/proc/stat`), to tell how
/// much of a measurement other processes shared the cores with.
pub fn machine_busy() -> Result<Duration> {
    let stat = fs::read_to_string("/proc/stat").context("cannot read /proc/stat")?;
    let line = stat
        .lines()
        .find(|line| line.starts_with("cpu "))
        .context("no cpu line in /proc/stat")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|field| field.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait are busy.
    let busy: u64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&index| ticks.get(index))
        .sum();
    Ok(Duration::from_secs_f64(
        busy as f64 / clock_ticks_per_second() as f64,
    ))
}

/// The unit of utime/stime in `/proc/<pid>/stat`.
fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf reads a constant of the system; it has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    // 100 is what Linux uses everywhere in practice; only reached if sysconf fails.
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// A TCP port on 127.0.0.1 that was free a moment ago. Whoever binds it next may race another
/// process for it; callers retry with a new port when their child fails to start.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// The path of an executable on `PATH`, if any.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The last `lines` lines of a text file (empty if unreadable).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measured_children_are_reaped_with_their_status_and_cpu() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (out, err) = (dir.path().join("out"), dir.path().join("err"));
        let mut command = Command::new("sh");
        command.args(["-c", "echo done; echo oops >&2; exit 3"]);
        let mut child = Measured::spawn("sh", command, &out, &err).expect("starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        let finished = loop {
            if let Some(finished) = child.try_finish().expect("waits") {
                break finished;
            }
            assert!(Instant::now() < deadline, "sh did not exit");
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(finished.status.code(), Some(3));
        assert!(finished.peak_rss_kib > 0);
        assert!(finished.wall > Duration::ZERO);
        assert_eq!(fs::read_to_string(&out).expect("stdout"), "done\n");
        assert_eq!(child.stderr_tail(5), "oops");
        assert!(child.try_finish().is_err(), "reaped once");
        // Dropped while running: killed and reaped.
        let mut command = Command::new("sleep");
        command.arg("60");
        let mut child = Measured::spawn("sleep", command, &out, &err).expect("starts");
        assert!(child.try_finish().expect("waits").is_none());
        drop(child);
    }
}
