//! Micro-benchmarks of the pure-CPU parts of the core: session ids, the stored envelope and the
//! timings recorded on every request.
//!
//! Run with `cargo bench --bench core` (add `-- --warm-up-time 1 --measurement-time 2` for a
//! quicker pass). Nothing here touches the network.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use msm::SessionData;
use msm::SessionId;
use msm::envelope::{Codec, KeyRing};
use msm::ids::{OsRandom, RandomSource};
use msm::stats::Timing;

/// A well-formed random part (128 bits in upper-case hex).
const RANDOM: &str = "602F7397FBE4D9932E59A9D0E52FE178";
/// Key prefix (context) of the benchmark codecs.
const CONTEXT: &str = "bench:";
/// Size limit of the benchmark codecs.
const MAX_SIZE: usize = 8 << 20;
/// An integrity key of realistic length (32 bytes); not a secret.
const HMAC_KEY: &[u8] = b"bench-hmac-key-not-a-secret-0123";
/// Bodies of at least this many bytes are compressed (the README's suggested setting).
const COMPRESSION_THRESHOLD: usize = 4096;
/// Attributes in the benchmark session, and the size of each value (a repeating byte pattern,
/// which LZ4 packs some 18 to 1: the best case of compression).
const ATTRIBUTES: usize = 10;
const ATTRIBUTE_SIZE: usize = 1024;

fn bench_ids(c: &mut Criterion) {
    let mut group = c.benchmark_group("ids");

    group.bench_function("generate", |b| {
        b.iter(|| {
            let random = OsRandom.random_part();
            let id = SessionId::new(&random, black_box("n1"), black_box(Some("tomcat0")))
                .expect("a generated id is well formed");
            id.to_string()
        })
    });

    let valid = format!("{RANDOM}-n1.tomcat0");
    assert!(SessionId::parse(&valid).is_some());
    group.bench_function("parse_valid_with_route", |b| {
        b.iter(|| SessionId::parse(black_box(&valid)))
    });

    // A protocol injection attempt that passes the random part and the node, and is refused only
    // by the check of the route: the longest path through the parser for a refused input.
    let hostile = format!("{RANDOM}-n1.tomcat0\r\nflush_all\r\n");
    assert!(SessionId::parse(&hostile).is_none());
    group.bench_function("parse_hostile", |b| {
        b.iter(|| SessionId::parse(black_box(&hostile)))
    });

    group.finish();
}

/// A logged-in session with 10 attributes of 1 KiB each.
fn session() -> SessionData {
    let mut session = SessionData {
        creation_time: 1_700_000_000_000,
        last_accessed: 1_700_000_060_000,
        max_inactive: 1800,
        version: 42,
        auth_type: Some("FORM".into()),
        principal: Some("alice".into()),
        ..SessionData::default()
    };
    for i in 0..ATTRIBUTES {
        let value = (0..ATTRIBUTE_SIZE)
            .map(|j| (i * 31 + j * 7) as u8)
            .collect();
        session.attributes.insert(format!("attribute{i}"), value);
    }
    session
}

fn bench_envelope(c: &mut Criterion) {
    let session = session();
    let keys = || KeyRing::parse(HMAC_KEY).expect("a valid key");
    let mut group = c.benchmark_group("envelope");
    // Throughput in the session's uncompressed envelope bytes, the same for every row.
    let plain_len = Codec::new(None, MAX_SIZE, CONTEXT)
        .encode(RANDOM, &session)
        .expect("encode")
        .len();
    group.throughput(Throughput::Bytes(plain_len as u64));
    for (name, codec) in [
        ("crc32", Codec::new(None, MAX_SIZE, CONTEXT)),
        ("hmac", Codec::new(Some(keys()), MAX_SIZE, CONTEXT)),
        ("aes_gcm", Codec::encrypted(keys(), MAX_SIZE, CONTEXT)),
        (
            "hmac_lz4",
            Codec::new(Some(keys()), MAX_SIZE, CONTEXT).with_compression(COMPRESSION_THRESHOLD),
        ),
        (
            "aes_gcm_lz4",
            Codec::encrypted(keys(), MAX_SIZE, CONTEXT).with_compression(COMPRESSION_THRESHOLD),
        ),
    ] {
        let encoded = codec.encode(RANDOM, &session).expect("encode");
        assert_eq!(codec.decode(RANDOM, &encoded).expect("decode"), session);
        println!("envelope/{name}: {} bytes stored", encoded.len());

        group.bench_function(format!("encode_{name}"), |b| {
            b.iter(|| codec.encode(black_box(RANDOM), black_box(&session)))
        });
        group.bench_function(format!("decode_{name}"), |b| {
            b.iter(|| codec.decode(black_box(RANDOM), black_box(&encoded)))
        });
    }

    // The worst case of compression: random bytes, compressed in vain and stored as they are.
    let mut noise = session;
    for value in noise.attributes.values_mut() {
        getrandom::fill(value).expect("the operating system's random generator failed");
    }
    let codec = Codec::new(Some(keys()), MAX_SIZE, CONTEXT).with_compression(COMPRESSION_THRESHOLD);
    group.bench_function("encode_hmac_lz4_incompressible", |b| {
        b.iter(|| codec.encode(black_box(RANDOM), black_box(&noise)))
    });
    group.finish();
}

/// What timing a request costs: reading the clock at its start and end, and recording the
/// duration (the manager does this for every request, `request_time`).
fn bench_timing(c: &mut Criterion) {
    let mut group = c.benchmark_group("timing");
    let timing = Timing::default();
    group.bench_function("measure_and_record", |b| {
        b.iter(|| {
            let started = std::time::Instant::now();
            timing.record(black_box(started.elapsed()));
        })
    });
    group.bench_function("percentile", |b| {
        b.iter(|| timing.percentile(black_box(0.99)))
    });
    group.finish();
}

criterion_group!(benches, bench_ids, bench_envelope, bench_timing);
criterion_main!(benches);
