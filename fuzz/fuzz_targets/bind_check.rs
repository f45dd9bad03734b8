// Oracle shared by the `bind` fuzz target and `tests/fuzz_seeds.rs`
// (`include!`d by both, hence no `//!` header and no `mod`).

use nvelox::config::BindSpec;

/// Feeds `data` (as UTF-8) to `BindSpec::parse` and panics if a promise
/// breaks: a parsed spec has ports 1..=65535 in order, prints to text that
/// parses back to the same spec, counts its ports right and overlaps
/// itself; a refusal has a message.
pub fn check_bind(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match BindSpec::parse(text) {
        Ok(spec) => {
            assert!(spec.first_port >= 1, "port 0 accepted from {text:?}");
            assert!(spec.first_port <= spec.last_port, "reversed range from {text:?}");
            let printed = spec.to_string();
            assert_eq!(
                BindSpec::parse(&printed),
                Ok(spec.clone()),
                "{text:?} -> {printed:?} does not parse back"
            );
            let count = usize::from(spec.last_port - spec.first_port) + 1;
            assert_eq!(spec.port_count(), count);
            assert_eq!(spec.ports().count(), count);
            assert!(spec.overlaps(&spec), "{printed} does not overlap itself");
            let addr = spec.addr(spec.first_port);
            assert_eq!(addr.port(), spec.first_port);
        }
        Err(e) => assert!(!e.to_string().is_empty(), "empty message for {text:?}"),
    }
}
