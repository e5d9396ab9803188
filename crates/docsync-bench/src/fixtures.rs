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

/// One file to create: its account, its path, its size.
#[derive(Debug, Clone)]
pub struct Planned {
    pub account: String,
    pub path: PathBuf,
    pub size: usize,
}

/// `count` files of `size` bytes under `root`, at most [`FILES_PER_ACCOUNT`] per
/// account, accounts named `{prefix}-{n}`.
pub fn plan(root: &Path, prefix: &str, count: usize, size: usize) -> Vec<Planned> {
    (0..count)
        .map(|i| {
            let account = format!("{prefix}-{:03}", i / FILES_PER_ACCOUNT);
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
        assert!(files[49]
            .path
            .ends_with("acct-000/business_verification/acct-00049.pdf"));
        assert_eq!(files[50].account, "acct-001");
    }
}
