//! Data-channel throughput: seal and open of 1400-byte packets (P_DATA_V2) for every cipher.
//!
//! `cargo bench --bench data_channel` (add `-- --quick` for a short run). Compare ratios between
//! ciphers, and against OpenVPN 2.6 measured on the same machine, not absolute numbers.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ferrovpn::proto::data::{DataKey, Role, header_v2};
use ferrovpn::proto::keys::{Cipher, Digest, KEY2_LEN, Key2};

const PACKET: usize = 1400;
/// Distinct pre-sealed packets cycled through by the open benchmark.
const BATCH: usize = 1024;

const CIPHERS: [(Cipher, Digest); 7] = [
    (Cipher::Aes128Gcm, Digest::Sha1),
    (Cipher::Aes192Gcm, Digest::Sha1),
    (Cipher::Aes256Gcm, Digest::Sha1),
    (Cipher::Chacha20Poly1305, Digest::Sha1),
    (Cipher::Aes128Cbc, Digest::Sha1),
    (Cipher::Aes192Cbc, Digest::Sha256),
    (Cipher::Aes256Cbc, Digest::Sha512),
];

fn key2() -> Key2 {
    let mut b = [0u8; KEY2_LEN];
    for (i, x) in b.iter_mut().enumerate() {
        *x = (i as u8).wrapping_mul(151).wrapping_add(17);
    }
    Key2::from_bytes(&b)
}

fn label(cipher: Cipher, auth: Digest) -> String {
    if cipher.is_aead() {
        cipher.name().to_owned()
    } else {
        format!("{}+{}", cipher.name(), auth.name())
    }
}

fn seal(c: &mut Criterion) {
    let mut group = c.benchmark_group("seal");
    group.throughput(Throughput::Bytes(PACKET as u64));
    let k = key2();
    let plaintext = vec![0x45u8; PACKET];
    let header = header_v2(0, 1);
    for (cipher, auth) in CIPHERS {
        let mut key = DataKey::new(cipher, auth, &k, Role::Client).unwrap();
        let mut out = Vec::with_capacity(PACKET + 128);
        group.bench_function(BenchmarkId::from_parameter(label(cipher, auth)), |b| {
            b.iter(|| {
                key.seal(&header, black_box(&plaintext), &mut out).unwrap();
                black_box(out.len())
            })
        });
    }
    group.finish();
}

fn open(c: &mut Criterion) {
    let mut group = c.benchmark_group("open");
    group.throughput(Throughput::Bytes(PACKET as u64));
    let k = key2();
    let plaintext = vec![0x45u8; PACKET];
    let header = header_v2(0, 1);
    for (cipher, auth) in CIPHERS {
        let mut tx = DataKey::new(cipher, auth, &k, Role::Client).unwrap();
        let packets: Vec<Vec<u8>> = (0..BATCH)
            .map(|_| {
                let mut p = Vec::new();
                tx.seal(&header, &plaintext, &mut p).unwrap();
                p
            })
            .collect();
        let mut rx = DataKey::new(cipher, auth, &k, Role::Server).unwrap();
        let mut out = Vec::with_capacity(PACKET + 128);
        let mut next = 0;
        group.bench_function(BenchmarkId::from_parameter(label(cipher, auth)), |b| {
            b.iter(|| {
                if next == BATCH {
                    // Packet ids 1..=BATCH again: start a fresh replay window (a 128-byte reset,
                    // amortised over BATCH packets).
                    rx.set_replay_window(64);
                    next = 0;
                }
                let n = rx
                    .open(black_box(&packets[next]), 4, &mut out)
                    .unwrap()
                    .len();
                next += 1;
                black_box(n)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, seal, open);
criterion_main!(benches);
