//! Micro-benchmarks of the per-request hot paths: parsing a pipeline, encoding replies, and
//! GET/SET against a partition's keyspace.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tessera_protocol::command::lookup;
use tessera_protocol::{ReplyWriter, RequestParser};
use tessera_storage::{Request, Store};

fn set_request(i: usize) -> Vec<u8> {
    let key = format!("key:{i:012}");
    format!(
        "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$64\r\n{}\r\n",
        key.len(),
        "x".repeat(64)
    )
    .into_bytes()
}

fn parse(c: &mut Criterion) {
    let pipeline: Vec<u8> = (0..16).flat_map(set_request).collect();
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(16));
    group.bench_function("set_pipeline_16", |b| {
        let mut parser = RequestParser::default();
        b.iter(|| {
            let mut pos = 0;
            while let Ok(Some(n)) = parser.parse(&pipeline[pos..]) {
                black_box(parser.args(&pipeline[pos..]).get(1));
                pos += n;
            }
            pos
        })
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let value = vec![b'v'; 64];
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(16));
    group.bench_function("bulk_64b_x16", |b| {
        let mut out = Vec::with_capacity(4096);
        b.iter(|| {
            out.clear();
            let mut w = ReplyWriter::new(&mut out, false);
            for _ in 0..16 {
                w.bulk(black_box(&value));
            }
            out.len()
        })
    });
    group.bench_function("int_x16", |b| {
        let mut out = Vec::with_capacity(4096);
        b.iter(|| {
            out.clear();
            let mut w = ReplyWriter::new(&mut out, false);
            for i in 0..16 {
                w.int(black_box(i * 1_000_003));
            }
            out.len()
        })
    });
    group.finish();
}

fn run(store: &mut Store, request: &[u8], out: &mut Vec<u8>) {
    let mut parser = RequestParser::default();
    let Ok(Some(_)) = parser.parse(request) else {
        panic!("bad request")
    };
    let args = parser.args(request);
    let spec = lookup(args.get(0)).expect("known command");
    store.execute(
        &Request {
            spec,
            args,
            db: 0,
            now: 1,
        },
        &mut ReplyWriter::new(out, false),
    );
}

fn keyspace(c: &mut Criterion) {
    const KEYS: usize = 100_000;
    let sets: Vec<Vec<u8>> = (0..KEYS).map(set_request).collect();
    let gets: Vec<Vec<u8>> = (0..KEYS)
        .map(|i| {
            let key = format!("key:{i:012}");
            format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len()).into_bytes()
        })
        .collect();
    let mut store = Store::new(1);
    let mut out = Vec::new();
    sets.iter().for_each(|r| run(&mut store, r, &mut out));
    let mut group = c.benchmark_group("keyspace_100k");
    group.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    group.bench_function("get", |b| {
        b.iter(|| {
            i = (i + 7919) % KEYS;
            out.clear();
            run(&mut store, &gets[i], &mut out);
        })
    });
    group.bench_function("set_overwrite", |b| {
        b.iter(|| {
            i = (i + 7919) % KEYS;
            out.clear();
            run(&mut store, &sets[i], &mut out);
        })
    });
    group.bench_function("set_fresh_keyspace", |b| {
        b.iter_batched(
            || Store::new(1),
            |mut fresh| {
                for r in sets.iter().take(1000) {
                    out.clear();
                    run(&mut fresh, r, &mut out);
                }
                fresh
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, parse, encode, keyspace);
criterion_main!(benches);
