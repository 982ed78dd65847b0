//! Content digests (`sha256:<hex>`) and the hashing readers and writers that compute them while
//! data streams through.

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;
use std::sync::mpsc;

/// A validated content digest. Only `sha256` is produced; `sha256` and `sha512` are accepted,
/// and the hex part is checked so that a digest is always safe to use as a file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

/// A string that is not a digest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid digest {0:?}: expected sha256:<64 lowercase hex> (or sha512:<128 lowercase hex>)")]
pub struct InvalidDigest(pub String);

impl Digest {
    /// Parses and validates `algorithm:hex`.
    pub fn parse(value: &str) -> Result<Digest, InvalidDigest> {
        // One grammar for the policy and the agent: the contract's.
        if !oras_cache_api::reference::is_digest(value) {
            return Err(InvalidDigest(value.into()));
        }
        Ok(Digest(value.into()))
    }

    /// The sha256 digest of `data`.
    pub fn of_bytes(data: &[u8]) -> Digest {
        Digest::from_sha256(Sha256::digest(data).into())
    }

    /// Builds the digest from a finished sha256 state.
    pub fn from_sha256(hash: [u8; 32]) -> Digest {
        Digest(format!("sha256:{}", to_hex(&hash)))
    }

    /// `sha256`.
    pub fn algorithm(&self) -> &str {
        self.0.split_once(':').map(|(a, _)| a).unwrap_or_default()
    }

    /// The hex part, used as the blob's file name in an OCI layout.
    pub fn hex(&self) -> &str {
        self.0.split_once(':').map(|(_, h)| h).unwrap_or_default()
    }

    /// The whole `algorithm:hex` string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Digest {
    type Err = InvalidDigest;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl TryFrom<String> for Digest {
    type Error = InvalidDigest;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Digest::parse(&value)
    }
}

impl From<Digest> for String {
    fn from(value: Digest) -> Self {
        value.0
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Digest::parse(&value).map_err(serde::de::Error::custom)
    }
}

fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 0xf) as usize] as char);
    }
    out
}

/// Running sha256 and byte count of a stream.
///
/// On x86-64 the `sha2` crate (0.10) compresses with the CPU's SHA extensions (SHA-NI) when the
/// CPU has them, chosen at run time (`src/sha256.rs` selects `x86::compress`, which checks
/// `cpufeatures::new!(shani_cpuid, "sha", "sse2", "ssse3", "sse4.1")` and else falls back to the
/// portable code); its `asm` feature only replaces that portable fallback. A profile of a 1 GiB
/// pull (BENCHMARKS.md) shows `sha2::sha256::x86::digest_blocks`, at the speed of
/// `openssl speed -evp sha256` on the same CPU, so no feature is needed here.
#[derive(Default, Clone)]
pub struct Hasher {
    state: Sha256,
    len: u64,
}

impl Hasher {
    /// A fresh hasher.
    pub fn new() -> Hasher {
        Hasher::default()
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.state.update(data);
        self.len += data.len() as u64;
    }

    /// Bytes seen so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no byte was seen.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of everything fed.
    pub fn finish(self) -> Digest {
        Digest::from_sha256(self.state.finalize().into())
    }
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hasher").field("len", &self.len).finish()
    }
}

/// A writer that hashes what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Hasher::new(),
        }
    }

    /// The inner writer and the hash of what was written.
    pub fn into_parts(self) -> (W, Hasher) {
        (self.inner, self.hasher)
    }

    /// The inner writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes what is read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::new(),
        }
    }

    /// The hash of what was read.
    pub fn into_hasher(self) -> Hasher {
        self.hasher
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Mode of every file the agent writes for another container to read (temporary files default to
/// 0600, which would hide inputs from an application running under another UID, and outputs and
/// the status from the sidecar).
pub fn readable() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o644)
}

/// Digest and size of a file, read in chunks while a second thread hashes them.
pub fn digest_file(path: &std::path::Path) -> io::Result<(Digest, u64)> {
    let mut file = std::fs::File::open(path)?;
    let hasher = copy_hashing(&mut file, &mut io::sink(), None, &mut |_| {})?;
    let len = hasher.len();
    Ok((hasher.finish(), len))
}

/// Size of the chunks [`copy_hashing`] hands to its hasher thread. Measured on a 1 GiB pull:
/// chunks that fit in a core's L2 cache (here 512 KiB) keep the copy into the page cache cheap;
/// 1 MiB chunks made the kernel's share of the copy about twice as costly.
const CHUNK_BYTES: usize = 256 * 1024;

/// Chunks allocated by one [`copy_hashing`] (its memory is `CHUNK_BYTES` times this), so that
/// the reader rarely waits for the hasher to hand one back.
const CHUNKS: usize = 4;

/// Why [`copy_hashing`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Reading the source failed (for a download: the connection broke, a retry may help).
    #[error("read: {0}")]
    Read(io::Error),
    /// Writing the destination failed.
    #[error("write: {0}")]
    Write(io::Error),
    /// More bytes arrived than the limit given (the limit).
    #[error("more than {0} bytes")]
    TooLong(u64),
}

impl From<CopyError> for io::Error {
    fn from(error: CopyError) -> io::Error {
        match error {
            CopyError::Read(e) | CopyError::Write(e) => e,
            CopyError::TooLong(_) => io::Error::new(io::ErrorKind::FileTooLarge, error),
        }
    }
}

/// Copies `reader` to `writer` and returns the hash of the bytes copied, stopping with
/// [`CopyError::TooLong`] as soon as more than `limit` bytes arrived; `on_written` is told the
/// size of every write (for progress).
///
/// SHA-256 costs about as much CPU as receiving and writing the same bytes, so it runs on a
/// second thread: this one fills a chunk, writing every read as it arrives (while it is still
/// in this core's cache), and hands the full chunk to the hasher, which hands it back once
/// hashed. Memory stays at four 256 KiB chunks whatever the size. Writing each full chunk once
/// instead (a third of the `write` calls) cost more CPU on a 1 GiB pull (median 1.74 s against
/// 1.42 s over 8 interleaved pulls, BENCHMARKS.md), most likely because the first bytes of a
/// chunk have left the cache by the time it is full.
pub fn copy_hashing(
    reader: &mut dyn Read,
    writer: &mut dyn Write,
    limit: Option<u64>,
    on_written: &mut dyn FnMut(u64),
) -> Result<Hasher, CopyError> {
    // Chunks travel with their filled length, so they never need resizing (re-zeroing).
    let (to_hasher, filled) = mpsc::sync_channel::<(Vec<u8>, usize)>(CHUNKS);
    let (to_reader, free) = mpsc::sync_channel::<Vec<u8>>(CHUNKS);
    for _ in 0..CHUNKS {
        // Cannot fail: `free` is alive and has room for every chunk.
        let _ = to_reader.send(vec![0u8; CHUNK_BYTES]);
    }
    std::thread::scope(|scope| {
        let hashing = std::thread::Builder::new()
            .name("oras-agent-hash".into())
            .spawn_scoped(scope, move || {
                let mut hasher = Hasher::new();
                for (chunk, len) in filled {
                    hasher.update(&chunk[..len]);
                    // Fails only when the copy already stopped, and then the chunk is not needed.
                    let _ = to_reader.send(chunk);
                }
                hasher
            })
            // Only when the system refuses a thread (a pids limit): said, not a panic.
            .map_err(|e| {
                CopyError::Write(io::Error::other(format!(
                    "cannot start the thread that checks the digest: {e}"
                )))
            })?;
        let copied = (|| {
            let mut total = 0u64;
            let mut ended = false;
            // `free` only closes if the hasher died; joining it below reports why.
            while !ended && let Ok(mut chunk) = free.recv() {
                let mut len = 0;
                while len < chunk.len() {
                    let n = match reader.read(&mut chunk[len..]) {
                        Ok(0) => {
                            ended = true;
                            break;
                        }
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(CopyError::Read(e)),
                    };
                    total += n as u64;
                    if let Some(limit) = limit
                        && total > limit
                    {
                        return Err(CopyError::TooLong(limit));
                    }
                    writer
                        .write_all(&chunk[len..len + n])
                        .map_err(CopyError::Write)?;
                    on_written(n as u64);
                    len += n;
                }
                if len > 0 && to_hasher.send((chunk, len)).is_err() {
                    break;
                }
            }
            writer.flush().map_err(CopyError::Write)
        })();
        // Closing the channel ends the hasher's loop.
        drop(to_hasher);
        let hasher = hashing
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        copied.map(|()| hasher)
    })
}

/// The tests' data generator, one file for the unit and the integration tests.
#[cfg(test)]
#[path = "../tests/common/data.rs"]
mod test_data;

#[cfg(test)]
mod tests {
    use super::test_data::sample;
    use super::*;

    #[test]
    fn digest_of_empty_json_matches_the_spec_constant() {
        assert_eq!(
            Digest::of_bytes(b"{}").as_str(),
            oras_cache_api::media_types::EMPTY_CONFIG_DIGEST
        );
    }

    #[test]
    fn digests_that_could_be_paths_are_refused() {
        for bad in [
            "sha256:../../etc/passwd",
            "sha256:ABC",
            "md5:00",
            "sha256",
            &format!("sha256:{}", "A".repeat(64)),
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad} should be refused");
        }
        let ok = format!("sha256:{}", "a".repeat(64));
        assert_eq!(Digest::parse(&ok).unwrap().hex(), "a".repeat(64));
    }

    #[test]
    fn hashing_writer_and_reader_agree_with_one_shot_digest() {
        let data = b"hello oras";
        let mut writer = HashingWriter::new(Vec::new());
        writer.write_all(data).unwrap();
        let (_, hasher) = writer.into_parts();
        assert_eq!(hasher.finish(), Digest::of_bytes(data));
        let mut reader = HashingReader::new(&data[..]);
        io::copy(&mut reader, &mut io::sink()).unwrap();
        assert_eq!(reader.into_hasher().finish(), Digest::of_bytes(data));
    }

    /// Serves its data in reads of odd sizes, then fails if told to.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        fail_at: Option<usize>,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.fail_at.is_some_and(|at| self.at >= at) {
                return Err(io::Error::new(io::ErrorKind::ConnectionReset, "cut"));
            }
            let n = buf.len().min(100_003).min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    #[test]
    fn copy_hashing_copies_and_hashes_many_chunks_in_order() {
        let data = sample(CHUNKS * CHUNK_BYTES * 2 + 12_345);
        let mut reader = Trickle {
            data: data.clone(),
            at: 0,
            fail_at: None,
        };
        let mut out = Vec::new();
        let mut reported = 0;
        let hasher = copy_hashing(&mut reader, &mut out, Some(data.len() as u64), &mut |n| {
            reported += n
        })
        .unwrap();
        assert_eq!(hasher.len(), data.len() as u64);
        assert_eq!(reported, data.len() as u64);
        assert_eq!(hasher.finish(), Digest::of_bytes(&data));
        assert!(out == data);
    }

    #[test]
    fn copy_hashing_reports_which_side_failed_and_overlong_input() {
        let data = sample(3 * CHUNK_BYTES);
        let mut cut = Trickle {
            data: data.clone(),
            at: 0,
            fail_at: Some(CHUNK_BYTES + 7),
        };
        let error = copy_hashing(&mut cut, &mut io::sink(), None, &mut |_| {}).unwrap_err();
        assert!(matches!(error, CopyError::Read(_)), "{error}");

        let mut full = [0u8; 10];
        let error =
            copy_hashing(&mut &data[..], &mut &mut full[..], None, &mut |_| {}).unwrap_err();
        assert!(matches!(error, CopyError::Write(_)), "{error}");

        let mut out = Vec::new();
        let error = copy_hashing(&mut &data[..], &mut out, Some(1000), &mut |_| {}).unwrap_err();
        assert!(matches!(error, CopyError::TooLong(1000)), "{error}");
        assert!(out.is_empty(), "nothing past the limit is written");
    }
}
