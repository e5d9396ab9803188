//! Files for the benchmarks: unique PDF-looking bytes (the APIs check magic
//! bytes, and identical content would be skipped as a duplicate), laid out as
//! `<folder>/<accountID>/<filePurpose>/<file>` (the zero-config layout).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The file purpose every benchmark file uses.
pub const PURPOSE: &str = "business_verification";

/// The Moov Files API's limit of files per account.
pub const FILES_PER_ACCOUNT: usize = 50;

/// `size` bytes starting with a PDF header and unique to `id`.
pub fn pdf_bytes(id: &str, size: usize) -> Vec<u8> {
    let mut bytes = format!("%PDF-1.4\n% docsync bench {id}\n").into_bytes();
    let mut x: u64 = id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    while bytes.len() < size {
        // xorshift: cheap, not compressible, different for every id
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes.truncate(size.max(16));
    bytes
}

/// Write `bytes` to `path` (parents created) and close it.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut f =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The ID of account `n` of the files named `prefix`: Moov's account IDs are
/// UUIDs (docsync syncs no other account folder, and the sandbox answers any
/// other ID 404). Deterministic, and distinct for every `(prefix, n)`: the
/// first groups hash the prefix, the last one is `n`.
pub fn account_id(prefix: &str, n: usize) -> String {
    let h = prefix.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!(
        "{:08x}-{:04x}-4000-8000-{n:012x}",
        h >> 32,
        (h >> 16) & 0xffff
    )
}

/// One file to create: its account, its path, its size.
#[derive(Debug, Clone)]
pub struct Planned {
    pub account: String,
    pub path: PathBuf,
    pub size: usize,
}

/// `count` files of `size` bytes under `root`, at most [`FILES_PER_ACCOUNT`] per
/// account, accounts [`account_id`]`(prefix, n)`.
pub fn plan(root: &Path, prefix: &str, count: usize, size: usize) -> Vec<Planned> {
    (0..count)
        .map(|i| {
            let account = account_id(prefix, i / FILES_PER_ACCOUNT);
            let path = root
                .join(&account)
                .join(PURPOSE)
                .join(format!("{prefix}-{i:05}.pdf"));
            Planned {
                account,
                path,
                size,
            }
        })
        .collect()
}

/// Create every planned file.
pub fn create(files: &[Planned]) -> Result<()> {
    for f in files {
        write(&f.path, &pdf_bytes(&f.path.to_string_lossy(), f.size))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_unique_pdfs_of_the_asked_size() {
        let a = pdf_bytes("a", 4096);
        let b = pdf_bytes("b", 4096);
        assert_eq!(a.len(), 4096);
        assert!(a.starts_with(b"%PDF-"));
        assert_ne!(a, b);
        assert_eq!(pdf_bytes("a", 4096), a);
    }

    #[test]
    fn plan_keeps_to_the_per_account_limit() {
        let files = plan(Path::new("/x"), "acct", 120, 10);
        let accounts: std::collections::BTreeSet<_> =
            files.iter().map(|f| f.account.clone()).collect();
        assert_eq!(accounts.len(), 3);
        assert!(files[49].path.ends_with(format!(
            "{}/business_verification/acct-00049.pdf",
            account_id("acct", 0)
        )));
        assert_eq!(files[50].account, account_id("acct", 1));
    }

    #[test]
    fn account_ids_are_distinct_uuids() {
        let ids = [
            account_id("acct", 0),
            account_id("acct", 1),
            account_id("mem", 0),
            account_id("mem", 1),
        ];
        for id in &ids {
            assert!(docsync::model::is_moov_account_id(id), "{id}");
        }
        let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len(), "{ids:?}");
        assert_eq!(account_id("acct", 1), account_id("acct", 1));
    }
}
