//! Reading files for content checks: SHA-256 of a whole file or of its first bytes, and a
//! byte-for-byte comparison of files in lockstep. Files are streamed through a fixed buffer,
//! never held in memory, and a file whose length changes while it is read counts as changed.
//! Listed files are opened only through [`open_verified`] (no symlink, no FIFO, same inode).

use std::fs::File;
use std::io::{self, Read};
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::verified_open::{BoundedReader, DeadlinePassed, is_changed_since_listed, open_verified};
use super::walk::FileEntry;

/// Bytes hashed by the partial pass: one page, enough to tell most same-size files apart.
pub const PARTIAL_BYTES: u64 = 4096;
/// Read buffer of the full passes.
const CHUNK_BYTES: usize = 128 * 1024;

/// A SHA-256 digest.
pub type Sha256Digest = [u8; 32];

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// Reads until `buffer` is full or the end of the file; returns the bytes read.
fn read_full(file: &mut File, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// `Some(file)` opened through [`open_verified`]; `None` when it is no longer the listed file.
fn open_listed(file: &FileEntry) -> io::Result<Option<File>> {
    match open_verified(file) {
        Ok(opened) => Ok(Some(opened)),
        Err(error) if is_changed_since_listed(&error) => Ok(None),
        Err(error) => Err(error),
    }
}

/// SHA-256 of the first `min(size, PARTIAL_BYTES)` bytes; `None` when the file changed since it
/// was listed.
pub fn partial_sha256(file: &FileEntry) -> io::Result<Option<Sha256Digest>> {
    let wanted = usize::try_from(file.size_bytes.min(PARTIAL_BYTES)).unwrap_or(0);
    let mut buffer = vec![0_u8; wanted];
    let Some(mut opened) = open_listed(file)? else { return Ok(None) };
    if read_full(&mut opened, &mut buffer)? != wanted {
        return Ok(None);
    }
    Ok(Some(Sha256::digest(&buffer).into()))
}

/// SHA-256 of the whole file; `None` when it changed since it was listed (its length included).
/// Fails with a `DeadlinePassed` error once `deadline` passes mid-file.
pub fn sha256_file(file: &FileEntry, deadline: Option<Instant>) -> io::Result<Option<Sha256Digest>> {
    let Some(opened) = open_listed(file)? else { return Ok(None) };
    let (digest, length) = sha256_reader(&mut BoundedReader::new(opened, file.size_bytes, deadline))?;
    Ok((length == file.size_bytes).then_some(digest))
}

/// SHA-256 and length of everything `reader` yields.
pub fn sha256_reader(reader: &mut impl Read) -> io::Result<(Sha256Digest, u64)> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0_u8; CHUNK_BYTES];
    let mut length = 0_u64;
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => {
                hasher.update(&buffer[..read]);
                length += read as u64;
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok((hasher.finalize().into(), length))
}

/// Which of `others` are byte-for-byte identical to `reference` (all of length `size_bytes`):
/// `true` at the index of each identical one. The files are read in lockstep, one chunk of each
/// at a time, so a difference early in a large file stops its reading early. A file that is no
/// longer the listed one is not identical; past `deadline` the comparison fails.
pub fn identical_to(
    reference: &FileEntry,
    others: &[&FileEntry],
    deadline: Option<Instant>,
) -> io::Result<Vec<bool>> {
    let size_bytes = reference.size_bytes;
    let Some(mut reference_file) = open_listed(reference)? else {
        return Ok(vec![false; others.len()]);
    };
    let mut other_files: Vec<Option<File>> = others
        .iter()
        .map(|other| if other.size_bytes == size_bytes { open_verified(other).ok() } else { None })
        .collect();
    let mut reference_chunk = vec![0_u8; CHUNK_BYTES];
    let mut other_chunk = vec![0_u8; CHUNK_BYTES];
    let mut remaining = size_bytes;
    while remaining > 0 && other_files.iter().any(Option::is_some) {
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Err(io::Error::other(DeadlinePassed));
        }
        let wanted = usize::try_from(remaining.min(CHUNK_BYTES as u64)).unwrap_or(CHUNK_BYTES);
        if read_full(&mut reference_file, &mut reference_chunk[..wanted])? != wanted {
            // The reference shrank: nothing can be confirmed against it.
            return Ok(vec![false; others.len()]);
        }
        for slot in &mut other_files {
            let Some(file) = slot else { continue };
            let same = read_full(file, &mut other_chunk[..wanted])
                .is_ok_and(|read| read == wanted && other_chunk[..wanted] == reference_chunk[..wanted]);
            if !same {
                *slot = None;
            }
        }
        remaining -= wanted as u64;
    }
    // Identical so far; each must also end where the reference ends (nothing appended).
    let mut probe = [0_u8; 1];
    let reference_ended = read_full(&mut reference_file, &mut probe)? == 0;
    Ok(other_files
        .into_iter()
        .map(|slot| {
            slot.is_some_and(|mut file| {
                reference_ended && read_full(&mut file, &mut probe).is_ok_and(|read| read == 0)
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;
    use crate::domain::test_support::{TempDir, entry_for};

    #[test]
    fn hashes_and_comparisons() {
        let base = TempDir::new();
        let big: Vec<u8> = (0..300_000_u32).map(|value| (value % 251) as u8).collect();
        let mut differs_late = big.clone();
        differs_late[299_999] ^= 1;
        for (name, content) in [("a", &big), ("b", &big), ("c", &differs_late)] {
            std::fs::write(base.path().join(name), content).unwrap();
        }
        let listed = |name: &str| entry_for(&base.path().join(name));
        let (a, b, c) = (listed("a"), listed("b"), listed("c"));
        assert_eq!(to_hex(&sha256_file(&a, None).unwrap().unwrap()), to_hex(&Sha256::digest(&big)));
        let shorter = FileEntry { size_bytes: 299_999, ..a.clone() };
        assert_eq!(sha256_file(&shorter, None).unwrap(), None);
        assert_eq!(partial_sha256(&a).unwrap(), partial_sha256(&c).unwrap());
        let identical = identical_to(&a, &[&b, &c], None).unwrap();
        assert_eq!(identical, vec![true, false]);
        assert_eq!(to_hex(&[0x00, 0xab, 0xff]), "00abff");
    }
}
