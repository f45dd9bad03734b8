//! The `http_request` fuzz oracle run on stable: over the seed files, over
//! random bytes and over mutated seeds.

use proptest::prelude::*;

mod check {
    #![allow(dead_code)]
    use crate::http;
    include!("../../fuzz/fuzz_targets/http_request_check.rs");
}
use check::{check_http_request, drive, Seen};

fn seeds() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/http_request");
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .expect("seed directory")
        .map(|e| std::fs::read(e.expect("entry").path()).expect("seed file"))
        .collect();
    out.sort();
    out
}

#[test]
fn every_seed_passes_the_oracle() {
    let seeds = seeds();
    assert!(seeds.len() >= 8);
    for seed in &seeds {
        check_http_request(seed);
    }
}

#[test]
fn seeds_mean_what_their_names_say() {
    let smuggle = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/seeds/http_request/smuggle_cl_te.bin"),
    )
    .unwrap();
    assert_eq!(drive(&smuggle[1..], &[]), vec![Seen::Reject(400)]);
    let pipelined = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/seeds/http_request/pipelined.bin"),
    )
    .unwrap();
    let heads = drive(&pipelined[1..], &[])
        .into_iter()
        .filter(|s| matches!(s, Seen::Head { .. }))
        .count();
    assert_eq!(heads, 3);
    assert_eq!(drive(&pipelined[1..], &[]).last(), Some(&Seen::Close));
}

proptest! {
    #[test]
    fn random_bytes_pass_the_oracle(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        check_http_request(&data);
    }

    #[test]
    fn mutated_seeds_pass_the_oracle(
        pick in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let seeds = seeds();
        let mut data = seeds[pick.index(seeds.len())].clone();
        for (at, byte) in edits {
            let i = at.index(data.len());
            data[i] = byte;
        }
        check_http_request(&data);
    }
}
