//! Child processes of the benchmark (redis-server, the tracker's worker and server) and what
//! `/proc` says about them: CPU time and memory.
//!
//! Every child is held by a [`Proc`] guard that kills and reaps it when dropped, so an error or
//! Ctrl-C in the benchmark never leaves a Redis, a worker or a server behind. Should the
//! benchmark die without unwinding (SIGKILL from a CI timeout), the kernel kills the children
//! too (`PR_SET_PDEATHSIG`).

use std::fs::{self, File};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
