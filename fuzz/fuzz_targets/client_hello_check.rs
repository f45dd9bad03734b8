// Oracle shared by the `client_hello` fuzz target and the stable test
// `tests/client_hello_seeds.rs` (`include!`d by both, hence no `//!`
// header and no `mod`).

use nvelox::tls::client_hello::{peek, Peek, MAX_CLIENT_HELLO};

/// Feeds `data` to the ClientHello peeker and panics if an invariant
/// breaks: a final verdict (a name or a refusal) does not change when more
/// bytes arrive (checked on shorter prefixes: each is undecided or gives
/// the same verdict), undecided only below the size bound, and a server
/// name is plain lowercase DNS text of at most 253 bytes.
pub fn check_peek(data: &[u8]) {
    let verdict = peek(data);
    match &verdict {
        Peek::NeedMore => assert!(data.len() < MAX_CLIENT_HELLO, "undecided past the bound"),
        Peek::ServerName(Some(name)) => {
            assert!(!name.is_empty() && name.len() <= 253, "name length {}", name.len());
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'-' | b'_' | b'.')),
                "name {name:?}"
            );
            assert!(!name.ends_with('.'), "trailing dot kept: {name:?}");
        }
        Peek::ServerName(None) | Peek::NotTls(_) => {}
    }
    let n = data.len();
    for k in [n.saturating_sub(1), n / 2, n / 3, 1.min(n)] {
        let earlier = peek(&data[..k]);
        if earlier != Peek::NeedMore && earlier != Peek::NotTls("ClientHello too long") {
            assert_eq!(earlier, verdict, "verdict at {k} bytes changed at {n}");
        }
    }
}
