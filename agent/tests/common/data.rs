//! Test data: deterministic bytes that gzip cannot shrink and in which no chunk of a copy repeats
//! another (so a chunk handed back in the wrong order changes the digest). Shared by the
//! integration tests (through `common`) and the library's unit tests (`src/digest.rs` includes
//! this file by path), so that there is one generator.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;

/// An endless xorshift64 stream.
pub struct Noise(u64);

impl Noise {
    /// The stream every test uses.
    pub fn new() -> Noise {
        Noise(0x9E37_79B9_7F4A_7C15)
    }

    /// Fills `buffer` with the next bytes of the stream, eight per step.
    pub fn fill(&mut self, buffer: &mut [u8]) {
        for word in buffer.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            word.copy_from_slice(&self.0.to_le_bytes()[..word.len()]);
        }
    }
}

/// The first `len` bytes of the stream.
pub fn sample(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    Noise::new().fill(&mut data);
    data
}

/// Writes the first `size` bytes of the stream to `path`, 1 MiB at a time (memory stays flat
/// for files of hundreds of MiB).
pub fn write_noise_file(path: &Path, size: u64) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut noise = Noise::new();
    let mut chunk = vec![0u8; 1024 * 1024];
    let mut written = 0;
    while written < size {
        noise.fill(&mut chunk);
        let n = (size - written).min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n]).unwrap();
        written += n as u64;
    }
    file.flush().unwrap();
}
