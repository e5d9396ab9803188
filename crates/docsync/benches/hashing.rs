#![allow(clippy::expect_used)]
//! Hashing throughput: `hasher::hash_file` (sha256 + type sniffing + the
//! changed-while-reading check) against a plain sha2 read loop, the baseline.
//! `cargo bench -p docsync --bench hashing` (also run by `cargo xtask bench`).

use std::io::{Read, Write};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sha2::{Digest, Sha256};

fn plain_sha256(path: &std::path::Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; docsync::local::hasher::CHUNK];
    loop {
        match file.read(&mut buf)? {
            0 => break,
            n => hasher.update(&buf[..n]),
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

fn hashing(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut group = c.benchmark_group("hash");
    for (name, size) in [
        ("4KiB", 4 * 1024),
        ("1MiB", 1024 * 1024),
        ("16MiB", 16 << 20),
    ] {
        let path = dir.path().join(format!("{name}.pdf"));
        let mut f = std::fs::File::create(&path).expect("creating the file");
        let mut bytes = b"%PDF-1.4\n".to_vec();
        bytes.extend((0..size).map(|i| (i * 31 % 251) as u8));
        bytes.truncate(size);
        f.write_all(&bytes).expect("writing the file");
        drop(f);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("hash_file", name), &path, |b, p| {
            b.iter(|| docsync::local::hasher::hash_file(p, u64::MAX).expect("hashing"))
        });
        group.bench_with_input(BenchmarkId::new("plain_sha2_loop", name), &path, |b, p| {
            b.iter(|| plain_sha256(p).expect("hashing"))
        });
    }
    group.finish();
}

criterion_group!(benches, hashing);
criterion_main!(benches);
