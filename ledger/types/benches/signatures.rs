//! Benchmarks of signature verification: single and batched (ZIP-215).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use cairn_types::{Address, BatchVerifier, ChainId, Keypair, SignedTransaction, Transaction};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

fn signed_transfers(count: usize) -> Vec<SignedTransaction> {
    let chain_id = ChainId::new("bench").unwrap();
    (0..count)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let keypair = Keypair::from_seed(&seed);
            Transaction {
                chain_id: chain_id.clone(),
                sender: keypair.public_key(),
                recipient: Address([9; 20]),
                amount: 10,
                fee: 1,
                nonce: i as u64,
                memo: String::new(),
                kind: cairn_types::TransactionKind::Transfer,
            }
            .sign(&keypair)
        })
        .collect()
}

fn verification(c: &mut Criterion) {
    let transfers = signed_transfers(1024);
    let messages: Vec<Vec<u8>> = transfers
        .iter()
        .map(|tx| tx.transaction.signing_bytes())
        .collect();
    let mut group = c.benchmark_group("ed25519");
    group.throughput(Throughput::Elements(1));
    group.bench_function("verify_single", |b| {
        let tx = &transfers[0];
        b.iter(|| {
            tx.transaction
                .sender
                .verify(&messages[0], &tx.signature)
                .is_ok()
        })
    });
    for batch_size in [8usize, 16, 32, 64, 128, 256, 1024] {
        group.throughput(Throughput::Elements(batch_size as u64));
        group.bench_function(format!("verify_batch_{batch_size}"), |b| {
            b.iter_batched(
                || {
                    let mut batch = BatchVerifier::with_capacity(batch_size);
                    for (tx, message) in transfers.iter().zip(&messages).take(batch_size) {
                        batch.push(tx.transaction.sender, tx.signature, message);
                    }
                    batch
                },
                |batch| assert!(batch.verify_all()),
                BatchSize::SmallInput,
            )
        });
    }
    // Keys never seen before (the decompressed-key cache misses): every
    // iteration signs with 1,024 fresh keys.
    group.throughput(Throughput::Elements(1024));
    group.sample_size(20);
    let mut round = 0u64;
    group.bench_function("verify_batch_1024_new_keys", |b| {
        b.iter_batched(
            || {
                round += 1;
                let fresh: Vec<(Keypair, Vec<u8>)> = (0..1024u64)
                    .map(|i| {
                        let mut seed = [7u8; 32];
                        seed[..8].copy_from_slice(&round.to_le_bytes());
                        seed[8..16].copy_from_slice(&i.to_le_bytes());
                        (Keypair::from_seed(&seed), i.to_le_bytes().to_vec())
                    })
                    .collect();
                fresh
                    .into_iter()
                    .map(|(key, message)| {
                        let signature = key.sign(&message);
                        (key.public_key(), signature, message)
                    })
                    .collect::<Vec<_>>()
            },
            |signed| {
                let mut batch = BatchVerifier::with_capacity(signed.len());
                for (public_key, signature, message) in &signed {
                    batch.push(*public_key, *signature, message);
                }
                assert!(batch.verify_all());
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();

    let mut codec = c.benchmark_group("transaction");
    codec.throughput(Throughput::Elements(1));
    let bytes = transfers[0].to_bytes();
    codec.bench_function("decode", |b| {
        b.iter(|| SignedTransaction::from_bytes(&bytes).unwrap())
    });
    codec.bench_function("hash", |b| b.iter(|| transfers[0].hash()));
    codec.bench_function("sign", |b| {
        let keypair = Keypair::from_seed(&[1; 32]);
        let transaction = transfers[0].transaction.clone();
        b.iter(|| transaction.clone().sign(&keypair))
    });
    codec.finish();
}

criterion_group!(benches, verification);
criterion_main!(benches);
