//! Heavy round trips: a 300 MiB file with the agent's peak RSS bounded, and 10,000 small files.

mod common;

use common::{pull, push, run_measuring_rss, run_ok, tree, write_noise_file};
use oras_test_support::Registry;
use std::path::Path;

/// Peak RSS allowed for the agent process while it moves a 300 MiB artifact.
const RSS_LIMIT_KIB: u64 = 64 * 1024;

/// Compares two files 1 MiB at a time (hashing in a debug build would dominate the test).
fn assert_same_content(a: &Path, b: &Path) {
    use std::io::Read;
    let (mut a_file, mut b_file) = (
        std::fs::File::open(a).unwrap(),
        std::fs::File::open(b).unwrap(),
    );
    assert_eq!(
        a_file.metadata().unwrap().len(),
        b_file.metadata().unwrap().len()
    );
    let (mut a_buf, mut b_buf) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = a_file.read(&mut a_buf).unwrap();
        if n == 0 {
            break;
        }
        b_file.read_exact(&mut b_buf[..n]).unwrap();
        assert!(
            a_buf[..n] == b_buf[..n],
            "{} and {} differ",
            a.display(),
            b.display()
        );
    }
}

#[test]
fn a_300_mib_file_round_trips_with_flat_memory() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("big.bin");
    write_noise_file(&source, 300 * 1024 * 1024);
    let reference = format!("{}/heavy/big:v1", registry.host());

    let (status, push_rss, stderr) =
        run_measuring_rss(push(&reference, &["big.bin"]).current_dir(work.path()));
    assert!(status.success(), "push failed: {stderr}");
    let out = work.path().join("out");
    let (status, pull_rss, stderr) = run_measuring_rss(&mut pull(&reference, &out));
    assert!(status.success(), "pull failed: {stderr}");
    eprintln!("peak RSS of oras-agent for 300 MiB: push {push_rss} KiB, pull {pull_rss} KiB");
    assert!(push_rss < RSS_LIMIT_KIB, "push peak RSS {push_rss} KiB");
    assert!(pull_rss < RSS_LIMIT_KIB, "pull peak RSS {pull_rss} KiB");
    assert_same_content(&out.join("big.bin"), &source);
}

#[test]
fn ten_thousand_small_files_round_trip_as_one_directory_layer() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("many");
    for dir in 0..100 {
        let sub = root.join(format!("d{dir:03}"));
        std::fs::create_dir_all(&sub).unwrap();
        for file in 0..100 {
            std::fs::write(
                sub.join(format!("f{file:03}.txt")),
                format!("file {dir}/{file}\n"),
            )
            .unwrap();
        }
    }
    let reference = format!("{}/heavy/many:v1", registry.host());
    run_ok(push(&reference, &["many"]).current_dir(work.path()));
    let out = work.path().join("out");
    run_ok(&mut pull(&reference, &out));
    let pushed = tree(&root);
    assert_eq!(pushed.values().filter(|v| !v.is_empty()).count(), 10_000);
    assert_eq!(tree(&out.join("many")), pushed);
}
