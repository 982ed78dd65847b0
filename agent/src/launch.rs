//! The launcher: wraps the application in its own container.
//!
//! It places the inputs, runs the command in its own process group with every catchable signal
//! forwarded to that group, copies stdout to `--output-pipe`, keeps a heartbeat on the share while
//! alive, packs the outputs for the sidecar, writes `state/status.json` last (temp file + rename),
//! and exits with the application's code (128 + signal when a signal killed it).

use crate::digest::readable;
use crate::init::input_layout_dir;
use crate::layout::Layout;
use crate::transfer::{pack_into_layout, place_layout};
use crate::unpack::{Limits, PlaceMode, Placer};
use crate::{debug, info};
use oras_cache_api::agent::{
    HEARTBEAT_FILE, HEARTBEAT_INTERVAL_SECS, INPUTS_DIR, LaunchArgs, LaunchStatus, OUTPUTS_DIR,
    STARTED_FILE, STATE_DIR, STATUS_FILE, UnpackLimits,
};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

/// Exit code when the launcher itself fails before the application runs (inputs unusable).
pub const EXIT_LAUNCHER_FAILED: i32 = 64;
/// Exit code when the command exists but cannot be executed (shell convention).
pub const EXIT_NOT_EXECUTABLE: i32 = 126;
/// Exit code when the command is not found (shell convention).
pub const EXIT_NOT_FOUND: i32 = 127;

/// Signals forwarded to the application's process group.
const FORWARDED_SIGNALS: &[i32] = &[
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

/// Runs the launcher and returns the exit code the container must end with; `limits` bound the
/// unpacking of the inputs' directory layers.
pub fn run(args: &LaunchArgs, limits: &UnpackLimits) -> i32 {
    let share = PathBuf::from(&args.share);
    let state = share.join(STATE_DIR);
    if let Err(e) = std::fs::create_dir_all(&state) {
        eprintln!("oras-agent: error: cannot create {}: {e}", state.display());
        return EXIT_LAUNCHER_FAILED;
    }
    let heartbeat = Heartbeat::start(share.join(HEARTBEAT_FILE));
    let status = run_with_share(args, limits, &share);
    let code = status.exit_code;
    if let Some(error) = &status.error {
        eprintln!("oras-agent: error: {error}");
    }
    if let Err(e) = write_status(&share, &status) {
        eprintln!("oras-agent: error: cannot write {STATUS_FILE}: {e}");
    }
    heartbeat.stop();
    code
}

fn run_with_share(args: &LaunchArgs, limits: &UnpackLimits, share: &Path) -> LaunchStatus {
    let failed = |exit_code: i32, error: String| LaunchStatus {
        exit_code,
        signal: None,
        push: false,
        error: Some(error),
    };
    if let Err(error) = place_inputs(args, limits, share) {
        return failed(EXIT_LAUNCHER_FAILED, error);
    }
    let (exit_code, signal) = match run_child(args, share) {
        Ok(outcome) => outcome,
        Err((code, error)) => return failed(code, error),
    };
    info!("command exited with code {exit_code}");
    let succeeded = exit_code == 0;
    let mut status = LaunchStatus {
        exit_code,
        signal,
        push: false,
        error: None,
    };
    if !args.pack_outputs {
        return status;
    }
    if !succeeded && !args.push_on_failure {
        info!("not packing outputs: the command failed (set push-on-failure to push anyway)");
        return status;
    }
    let Some(output) = args.output_path.as_ref().or(args.output_pipe.as_ref()) else {
        status.error = Some(
            "outputs are to be pushed but neither --output-path nor --output-pipe names them"
                .into(),
        );
        return status;
    };
    let output = PathBuf::from(output);
    if !output.exists() {
        status.error = Some(format!(
            "output path {} does not exist after the command ran; nothing was pushed",
            output.display()
        ));
        return status;
    }
    if let Err(error) = refuse_share_or_root("output path", &output, share, true) {
        status.error = Some(error);
        return status;
    }
    let outputs = share.join(OUTPUTS_DIR);
    let _ = std::fs::remove_dir_all(&outputs);
    match pack_into_layout(std::slice::from_ref(&output), &outputs) {
        Ok(_) => {
            status.push = true;
            info!("packed {} for the sidecar", output.display());
        }
        Err(e) => status.error = Some(format!("cannot pack {}: {e}", output.display())),
    }
    status
}

/// Refuses a path that is the shared volume or inside it, and with `refuse_root` also `/` and any
/// directory holding the share: packing it would pack the agent's own files (or everything), and
/// placing inputs in the share could overwrite the agent or its status. The policy refuses these at admission; this is the agent's
/// own check, for a pod written by hand.
fn refuse_share_or_root(
    what: &str,
    path: &Path,
    share: &Path,
    refuse_root: bool,
) -> Result<(), String> {
    // Resolve what exists (symlinks included), then append the rest lexically.
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| format!("working directory: {e}"))?
            .join(path)
    };
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    let resolved = loop {
        match existing.canonicalize() {
            Ok(found) => break found,
            Err(_) => match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_os_string());
                    existing = parent;
                }
                _ => break existing.to_path_buf(),
            },
        }
    };
    let resolved = rest.iter().rev().fold(resolved, |p, name| p.join(name));
    let share = share.canonicalize().unwrap_or_else(|_| share.to_path_buf());
    if refuse_root && resolved == Path::new("/") {
        return Err(format!(
            "{what} {} is the whole filesystem (/); name a directory of the step instead",
            path.display()
        ));
    }
    let holds_share = refuse_root && share.starts_with(&resolved);
    if resolved.starts_with(&share) || holds_share {
        return Err(format!(
            "{what} {} is or holds the agent's shared volume {}; name a directory of the step outside it",
            path.display(),
            share.display()
        ));
    }
    Ok(())
}

/// Places every input layout of the share (in input order) into the input path; on failure,
/// removes what it placed, so the step's directory is as it was.
fn place_inputs(args: &LaunchArgs, limits: &UnpackLimits, share: &Path) -> Result<(), String> {
    let inputs_dir = share.join(INPUTS_DIR);
    if !inputs_dir.is_dir() {
        return Ok(());
    }
    let mut indexes: Vec<usize> = std::fs::read_dir(&inputs_dir)
        .map_err(|e| format!("{}: {e}", inputs_dir.display()))?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    indexes.sort_unstable();
    if indexes.is_empty() {
        return Ok(());
    }
    let target = match &args.input_path {
        Some(path) => PathBuf::from(path),
        None => std::env::current_dir().map_err(|e| format!("working directory: {e}"))?,
    };
    // The working directory may well be `/` or hold the share (many images leave it at `/`):
    // inputs placed there write their titles only, and the placer refuses a title that would
    // land in the share, so only a target inside the share is refused outright.
    refuse_share_or_root("input path", &target, share, false)?;
    let mut placer = Placer::new(&target, args.unpack)
        .map_err(|e| e.to_string())?
        .with_limits(Limits::from(limits))
        .forbid(&share.canonicalize().unwrap_or_else(|_| share.to_path_buf()));
    for index in indexes {
        let owner = format!("input #{index}");
        let placed = Layout::open(&input_layout_dir(share, index))
            .map_err(|e| e.to_string())
            .and_then(|layout| {
                place_layout(&layout, &mut placer, &owner, PlaceMode::Copy)
                    .map_err(|e| format!("{owner}: {e}"))
            });
        match placed {
            Ok(written) => {
                for path in written {
                    debug!("{owner}: placed {}", path.display());
                }
            }
            Err(error) => {
                placer.rollback();
                return Err(error);
            }
        }
    }
    info!("inputs placed in {}", placer.root().display());
    Ok(())
}

/// Runs the command; returns (exit code, signal) or (launcher exit code, error).
fn run_child(args: &LaunchArgs, share: &Path) -> Result<(i32, Option<i32>), (i32, String)> {
    let (program, rest) = args.command.split_first().ok_or((
        EXIT_LAUNCHER_FAILED,
        "no command to run after --".to_string(),
    ))?;
    let pipe_file = match &args.output_pipe {
        Some(path) => Some(std::fs::File::create(path).map_err(|e| {
            (
                EXIT_LAUNCHER_FAILED,
                format!("--output-pipe {path}: cannot create it: {e}"),
            )
        })?),
        None => None,
    };
    // Registered before the spawn so that a signal arriving in between is not lost: it is
    // forwarded as soon as the group exists.
    let group = Arc::new(AtomicI32::new(0));
    let mut signals = signal_hook::iterator::Signals::new(FORWARDED_SIGNALS).map_err(|e| {
        (
            EXIT_LAUNCHER_FAILED,
            format!("cannot install signal handlers: {e}"),
        )
    })?;
    let signals_handle = signals.handle();
    let forward_group = group.clone();
    let pending: Arc<std::sync::Mutex<Vec<i32>>> = Arc::default();
    let pending_in_thread = pending.clone();
    let forwarder = std::thread::spawn(move || {
        for signal in signals.forever() {
            let pgid = forward_group.load(Ordering::SeqCst);
            if pgid > 0 {
                debug!("forwarding signal {signal} to process group {pgid}");
                // SAFETY: kill(2) with a negative pid signals a process group; no memory involved.
                unsafe { libc::kill(-pgid, signal) };
            } else {
                pending_in_thread
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(signal);
            }
        }
    });

    let mut command = Command::new(program);
    command.args(rest).process_group(0);
    if pipe_file.is_some() {
        command.stdout(Stdio::piped());
    }
    let spawned = command.spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            signals_handle.close();
            let _ = forwarder.join();
            let code = match e.kind() {
                std::io::ErrorKind::NotFound => EXIT_NOT_FOUND,
                _ => EXIT_NOT_EXECUTABLE,
            };
            return Err((code, format!("cannot run {program}: {e}")));
        }
    };
    let pgid = child.id() as i32;
    group.store(pgid, Ordering::SeqCst);
    for signal in pending.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
        // SAFETY: as above.
        unsafe { libc::kill(-pgid, signal) };
    }
    if let Err(e) = std::fs::write(share.join(STARTED_FILE), format!("{pgid}\n")) {
        eprintln!("oras-agent: warning: cannot write {STARTED_FILE}: {e}");
    }
    let tee = match (child.stdout.take(), pipe_file) {
        (Some(stdout), Some(file)) => {
            let (done, finished) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = done.send(tee_stdout(stdout, file));
            });
            Some(finished)
        }
        _ => None,
    };
    let waited = wait_reaping(pgid);
    if let Some(finished) = tee {
        // Background processes of the step may keep stdout open: the pipe gets what they wrote
        // within a grace period, then the launcher moves on.
        match finished.recv_timeout(TEE_GRACE) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                eprintln!("oras-agent: warning: copying stdout to the output pipe failed: {e}")
            }
            Err(_) => eprintln!(
                "oras-agent: warning: stdout is still open (background processes?) {} s after the command exited; the output pipe may be incomplete",
                TEE_GRACE.as_secs()
            ),
        }
    }
    signals_handle.close();
    let _ = forwarder.join();
    waited.map_err(|e| (EXIT_LAUNCHER_FAILED, format!("waiting for {program}: {e}")))
}

/// How long stdout may stay open after the command exited.
const TEE_GRACE: Duration = Duration::from_secs(5);

/// Waits for `pid`, reaping every other child on the way: the launcher is PID 1 of the
/// application container, so orphaned grandchildren are re-parented to it and must not stay
/// zombies. Returns (exit code, signal).
fn wait_reaping(pid: i32) -> std::io::Result<(i32, Option<i32>)> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid pointer to an int.
        let reaped = unsafe { libc::waitpid(-1, &mut status, 0) };
        if reaped == -1 {
            let error = std::io::Error::last_os_error();
            if error.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        if reaped != pid {
            debug!("reaped orphan {reaped}");
            continue;
        }
        if libc::WIFEXITED(status) {
            return Ok((libc::WEXITSTATUS(status), None));
        }
        if libc::WIFSIGNALED(status) {
            let signal = libc::WTERMSIG(status);
            return Ok((128 + signal, Some(signal)));
        }
    }
}

/// Copies the child's stdout to ours and to the pipe file. A broken container log does not stop
/// the copy to the file (nor starve the child of a reader).
fn tee_stdout(
    mut stdout: std::process::ChildStdout,
    mut file: std::fs::File,
) -> std::io::Result<()> {
    let mut buffer = [0u8; 64 * 1024];
    let mut ours = Some(std::io::stdout());
    loop {
        let n = match stdout.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if let Some(log) = ours.as_mut()
            && let Err(e) = log.write_all(&buffer[..n]).and_then(|_| log.flush())
        {
            eprintln!("oras-agent: warning: the container log stopped taking stdout: {e}");
            ours = None;
        }
        file.write_all(&buffer[..n])?;
    }
    file.sync_all()
}

/// Writes the status file atomically: the sidecar reads it only once complete.
pub fn write_status(share: &Path, status: &LaunchStatus) -> std::io::Result<()> {
    let state = share.join(STATE_DIR);
    std::fs::create_dir_all(&state)?;
    let mut temp = tempfile::Builder::new()
        .prefix(".status-")
        .permissions(readable())
        .tempfile_in(&state)?;
    serde_json::to_writer(&mut temp, status)?;
    temp.as_file().sync_all()?;
    temp.persist(share.join(STATUS_FILE)).map_err(|e| e.error)?;
    Ok(())
}

/// Refreshes the heartbeat file until stopped.
struct Heartbeat {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Heartbeat {
    fn start(path: PathBuf) -> Heartbeat {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                let now = std::time::SystemTime::now();
                let secs = now
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                if let Err(e) = std::fs::write(&path, format!("{secs}\n")) {
                    eprintln!("oras-agent: warning: heartbeat {}: {e}", path.display());
                }
                // Sleep in short steps so that stopping is prompt.
                for _ in 0..(HEARTBEAT_INTERVAL_SECS * 10) {
                    if flag.load(Ordering::SeqCst) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        });
        Heartbeat {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
