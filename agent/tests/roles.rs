//! The pod roles (init, launch, sidecar) through the binary, with the argv the policy builds.

mod common;

use common::{agent, init, pull, push, role, run, run_failing, run_ok, tree};
use oras_agent::Reference;
use oras_agent::registry::{ClientOptions, RegistryClient, RegistryError};
use oras_cache_api::agent::{LaunchArgs, LaunchStatus, STATUS_FILE, SidecarArgs};
use oras_test_support::Registry;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

fn status(share: &Path) -> LaunchStatus {
    serde_json::from_slice(&std::fs::read(share.join(STATUS_FILE)).unwrap()).unwrap()
}

fn launch(share: &Path, cwd: &Path, args: LaunchArgs) -> std::process::Output {
    let args = LaunchArgs {
        share: share.display().to_string(),
        ..args
    };
    // The agent containers run with a read-only root filesystem: nothing may need $TMPDIR.
    run(role(args.to_args()).current_dir(cwd))
}

fn sidecar(share: &Path, output: &str) -> SidecarArgs {
    SidecarArgs {
        share: share.display().to_string(),
        output: output.into(),
        plain_http: true,
        start_timeout_secs: 30,
        heartbeat_timeout_secs: 30,
        debug: false,
    }
}

fn assert_readable_by_others(path: &Path) {
    let mode = std::fs::metadata(path).unwrap().permissions().mode();
    let wanted = if path.is_dir() { 0o005 } else { 0o004 };
    assert_eq!(
        mode & wanted,
        wanted,
        "{} has mode {mode:o}",
        path.display()
    );
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            assert_readable_by_others(&entry.unwrap().path());
        }
    }
}

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

fn tag_exists(registry: &Registry, reference: &str) -> bool {
    let client = RegistryClient::new(ClientOptions::new(true)).unwrap();
    match client.pull_manifest(&Reference::parse(reference).unwrap()) {
        Ok(_) => true,
        Err(RegistryError::Status { status: 404, .. }) => false,
        Err(e) => panic!("unexpected: {e} ({})", registry.log()),
    }
}

#[test]
fn init_launch_and_sidecar_move_inputs_in_and_outputs_out() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir_all(src.join("data")).unwrap();
    std::fs::write(src.join("data/numbers.txt"), "1\n2\n3\n").unwrap();
    std::fs::write(src.join("config.ini"), "[x]\n").unwrap();
    let input = format!("{}/flow/input:v1", registry.host());
    run_ok(push(&input, &["data", "config.ini"]).current_dir(&src));

    let share = work.path().join("share");
    run_ok(&mut init(&share, &[&input]));
    let installed = share.join("bin/oras-agent");
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        std::fs::read(common::agent_bin()).unwrap()
    );
    assert_eq!(
        std::fs::metadata(&installed).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert!(share.join("inputs/0/index.json").is_file());

    let app_dir = work.path().join("app");
    std::fs::create_dir_all(&app_dir).unwrap();
    let placed = work.path().join("placed");
    let output = launch(
        &share,
        &app_dir,
        LaunchArgs {
            input_path: Some(placed.display().to_string()),
            output_pipe: Some("pipe.txt".into()),
            unpack: true,
            pack_outputs: true,
            command: sh(&format!(
                "cat {}/data/numbers.txt; echo sum=6",
                placed.display()
            )),
            ..Default::default()
        },
    );
    assert_succeeded(&output);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "1\n2\n3\nsum=6\n",
        "stdout still reaches the log"
    );
    assert_eq!(
        std::fs::read_to_string(app_dir.join("pipe.txt")).unwrap(),
        "1\n2\n3\nsum=6\n"
    );
    assert_eq!(tree(&placed), tree(&src), "inputs placed at input-path");
    assert!(share.join("state/started").is_file());
    assert!(share.join("state/heartbeat").is_file());
    let recorded = status(&share);
    assert_eq!(
        (recorded.exit_code, recorded.push, recorded.error),
        (0, true, None)
    );

    // The three containers may run under different UIDs: what one writes, the others can read.
    for path in [
        share.join(STATUS_FILE),
        share.join("outputs"),
        share.join("inputs"),
    ] {
        assert_readable_by_others(&path);
    }

    let target = format!("{}/flow/output:v1", registry.host());
    run_ok(&mut role(sidecar(&share, &target).to_args()));
    let pulled = work.path().join("pulled");
    run_ok(&mut pull(&target, &pulled));
    assert_eq!(
        std::fs::read_to_string(pulled.join("pipe.txt")).unwrap(),
        "1\n2\n3\nsum=6\n"
    );
}

#[test]
fn inputs_default_to_the_working_directory_and_unpack_can_be_turned_off() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir_all(src.join("dir")).unwrap();
    std::fs::write(src.join("dir/a.txt"), "a").unwrap();
    let input = format!("{}/cwd/input:v1", registry.host());
    run_ok(push(&input, &["dir"]).current_dir(&src));
    let share = work.path().join("share");
    run_ok(&mut init(&share, &[&input]));

    let app = work.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    let output = launch(
        &share,
        &app,
        LaunchArgs {
            unpack: true,
            command: sh("cat dir/a.txt"),
            ..Default::default()
        },
    );
    assert_succeeded(&output);
    assert_eq!(output.stdout, b"a");

    let packed = work.path().join("packed");
    std::fs::create_dir_all(&packed).unwrap();
    let output = launch(
        &share,
        &packed,
        LaunchArgs {
            unpack: false,
            command: sh("test -f dir.tar.gz"),
            ..Default::default()
        },
    );
    assert_succeeded(&output);
    assert!(!packed.join("dir").exists());
}

#[test]
fn a_failed_step_keeps_its_code_and_pushes_nothing_unless_asked() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let share = work.path().join("share");
    let failing = LaunchArgs {
        output_path: Some("result.txt".into()),
        unpack: true,
        pack_outputs: true,
        command: sh("echo partial > result.txt; exit 3"),
        ..Default::default()
    };
    let output = launch(&share, work.path(), failing.clone());
    assert_eq!(output.status.code(), Some(3));
    let recorded = status(&share);
    assert_eq!(
        (recorded.exit_code, recorded.push, recorded.signal),
        (3, false, None)
    );
    let target = format!("{}/failed/output:v1", registry.host());
    run_ok(&mut role(sidecar(&share, &target).to_args()));
    assert!(
        !tag_exists(&registry, &target),
        "nothing is pushed after a failed step"
    );

    let share = work.path().join("share-2");
    let output = launch(
        &share,
        work.path(),
        LaunchArgs {
            push_on_failure: true,
            ..failing
        },
    );
    assert_eq!(output.status.code(), Some(3));
    assert!(status(&share).push);
    run_ok(&mut role(sidecar(&share, &target).to_args()));
    assert!(tag_exists(&registry, &target), "push-on-failure pushes");
}

#[test]
fn a_step_killed_by_a_signal_ends_with_128_plus_the_signal() {
    let work = tempfile::tempdir().unwrap();
    let share = work.path().join("share");
    let output = launch(
        &share,
        work.path(),
        LaunchArgs {
            unpack: true,
            command: sh("kill -9 $$"),
            ..Default::default()
        },
    );
    assert_eq!(output.status.code(), Some(137));
    let recorded = status(&share);
    assert_eq!((recorded.exit_code, recorded.signal), (137, Some(9)));
}

#[test]
fn sigterm_to_the_launcher_reaches_the_whole_process_group() {
    let work = tempfile::tempdir().unwrap();
    let share = work.path().join("share");
    let args = LaunchArgs {
        share: share.display().to_string(),
        unpack: true,
        // The shell's child `sleep` is in the group too: the launcher must not wait 60 s.
        command: sh("sleep 60; echo survived"),
        ..Default::default()
    };
    let mut child = agent()
        .current_dir(work.path())
        .args(args.to_args())
        .spawn()
        .unwrap();
    let started = share.join("state/started");
    for _ in 0..200 {
        if started.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(started.exists(), "the launcher never started the command");
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(143));
    assert_eq!(status(&share).signal, Some(15));
}

#[test]
fn a_missing_command_exits_127_and_records_why() {
    let work = tempfile::tempdir().unwrap();
    let share = work.path().join("share");
    let output = launch(
        &share,
        work.path(),
        LaunchArgs {
            unpack: true,
            command: vec!["/no/such/binary".into()],
            ..Default::default()
        },
    );
    assert_eq!(output.status.code(), Some(127));
    assert!(status(&share).error.unwrap().contains("/no/such/binary"));
}

#[test]
fn the_sidecar_gives_up_when_the_app_never_starts_or_its_heartbeat_stops() {
    let work = tempfile::tempdir().unwrap();
    let share = work.path().join("share");
    std::fs::create_dir_all(share.join("state")).unwrap();
    let mut args = sidecar(&share, "127.0.0.1:1/never/pushed:v1");
    args.start_timeout_secs = 1;
    let message = run_failing(&mut role(args.to_args()));
    assert!(message.contains("never started"), "{message}");

    let heartbeat = share.join("state/heartbeat");
    std::fs::write(&heartbeat, "0\n").unwrap();
    std::fs::write(share.join("state/started"), "1\n").unwrap();
    let stale = std::time::SystemTime::now() - Duration::from_secs(120);
    std::fs::File::options()
        .write(true)
        .open(&heartbeat)
        .unwrap()
        .set_modified(stale)
        .unwrap();
    let mut args = sidecar(&share, "127.0.0.1:1/never/pushed:v1");
    args.heartbeat_timeout_secs = 5;
    let message = run_failing(&mut role(args.to_args()));
    assert!(
        message.contains("stopped without recording a status"),
        "{message}"
    );
}

#[test]
fn inputs_that_would_overwrite_each_other_fail_init() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("same.txt"), "one").unwrap();
    let first = format!("{}/clash/a:v1", registry.host());
    let second = format!("{}/clash/b:v1", registry.host());
    run_ok(push(&first, &["same.txt"]).current_dir(work.path()));
    std::fs::write(work.path().join("same.txt"), "two").unwrap();
    run_ok(push(&second, &["same.txt"]).current_dir(work.path()));
    let share = work.path().join("share");
    let stderr = run_failing(&mut init(&share, &[&first, &second]));
    assert!(
        stderr.contains("same.txt") && stderr.contains("input #0") && stderr.contains("input #1"),
        "{stderr}"
    );
}

#[test]
fn a_push_cut_before_the_manifest_leaves_no_tag() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let share = work.path().join("share");
    std::fs::write(work.path().join("a.txt"), "first layer").unwrap();
    std::fs::write(work.path().join("b.txt"), "second layer").unwrap();
    let output = launch(
        &share,
        work.path(),
        LaunchArgs {
            output_path: Some("a.txt".into()),
            unpack: true,
            pack_outputs: true,
            command: sh("true"),
            ..Default::default()
        },
    );
    assert_eq!(output.status.code(), Some(0));
    // Cut the push: the layer blob disappears from the packed layout after the config went up.
    let layout = oras_agent::layout::Layout::open(&share.join("outputs")).unwrap();
    let (manifest, _, _) = layout.manifest().unwrap();
    std::fs::remove_file(layout.blob_path(&manifest.layers[0].digest)).unwrap();
    let target = format!("{}/cut/output:v1", registry.host());
    let message = run_failing(&mut role(sidecar(&share, &target).to_args()));
    assert!(message.contains("pushing the outputs"), "{message}");
    assert!(
        !tag_exists(&registry, &target),
        "a failed push leaves no tag"
    );
}

#[test]
fn a_registry_down_at_start_is_waited_for_within_the_retry_window() {
    let mut registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("late.txt"), "late").unwrap();
    let target = format!("{}/late/push:v1", registry.host());
    registry.stop();
    let pusher = push(&target, &["late.txt"])
        .current_dir(work.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    registry.restart().unwrap();
    let output = pusher.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(tag_exists(&registry, &target));
}

#[test]
fn a_directory_output_is_packed_on_the_share_and_pushed_by_the_sidecar() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let share = work.path().join("share");
    let app = work.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    let output = launch(
        &share,
        &app,
        LaunchArgs {
            output_path: Some(app.join("results").display().to_string()),
            unpack: true,
            pack_outputs: true,
            command: sh(
                "mkdir -p results/plots && echo 42 > results/answer.txt && printf png > results/plots/p.png",
            ),
            ..Default::default()
        },
    );
    assert_succeeded(&output);
    assert!(status(&share).push);
    let target = format!("{}/dir/output:v1", registry.host());
    run_ok(&mut role(sidecar(&share, &target).to_args()));
    let pulled = work.path().join("pulled");
    run_ok(&mut pull(&target, &pulled));
    assert_eq!(tree(&pulled.join("results")), tree(&app.join("results")));
}

/// The process exited 0; its stderr is shown when not.
fn assert_succeeded(output: &std::process::Output) {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
