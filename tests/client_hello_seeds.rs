//! The ClientHello fuzz oracle (`fuzz/fuzz_targets/client_hello_check.rs`)
//! run on stable over the seed corpus, every prefix of each seed, and
//! deterministic mutations of them (flipped bytes, cut and repeated
//! records), so `cargo test` keeps the oracle and the peeker honest
//! between fuzzing runs.

include!("../fuzz/fuzz_targets/client_hello_check.rs");

fn seeds() -> Vec<(String, Vec<u8>)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/client_hello");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("seed folder") {
        let path = entry.expect("seed entry").path();
        let bytes = std::fs::read(&path).expect("seed file");
        out.push((path.display().to_string(), bytes));
    }
    out.sort();
    assert!(out.len() >= 5, "seeds missing from {dir}");
    out
}

#[test]
fn the_oracle_holds_on_every_seed_and_every_prefix() {
    for (name, seed) in seeds() {
        for k in 0..=seed.len() {
            check_peek(&seed[..k]);
        }
        eprintln!("{name}: {:?}", peek(&seed));
    }
}

#[test]
fn the_oracle_holds_on_mutated_seeds() {
    // A small xorshift: deterministic, no dependency.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for (_, seed) in seeds() {
        if seed.is_empty() {
            continue;
        }
        for _ in 0..400 {
            let mut m = seed.clone();
            for _ in 0..1 + next() % 4 {
                let i = (next() as usize) % m.len();
                m[i] = next() as u8;
            }
            check_peek(&m);
            let cut = (next() as usize) % m.len();
            check_peek(&m[..cut]);
        }
        let mut twice = seed.clone();
        twice.extend_from_slice(&seed);
        check_peek(&twice);
    }
}

#[test]
fn real_hellos_in_the_seeds_name_their_server() {
    let named: Vec<Peek> = seeds()
        .into_iter()
        .filter(|(n, _)| n.ends_with("python_tls13_sni.bin") || n.ends_with("records_of_100.bin"))
        .map(|(_, s)| peek(&s))
        .collect();
    assert_eq!(
        named,
        vec![Peek::ServerName(Some("app.example.com".into())); 2]
    );
}
