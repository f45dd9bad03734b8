// Oracle shared by the `parse` fuzz target and the stable property tests
// (`include!`d by both, hence no `//!` header and no `mod`).

use nvelox::proxy_protocol::{Accept, Header, Parsed};

/// Feeds `data` to `Header::parse` in every `Accept` mode and panics if an
/// invariant breaks: a complete header consumed at most `data.len()` bytes,
/// parses the same from exactly its own bytes and under `Accept::Any`, every
/// shorter prefix of it is `Incomplete`, and it re-emits to bytes that parse
/// back to its canonical form.
pub fn check_parse(data: &[u8]) {
    for accept in [Accept::V1, Accept::V2, Accept::Any] {
        let parsed = Header::parse(data, accept);
        let (header, consumed) = match parsed {
            Err(_) => continue,
            Ok(Parsed::Incomplete { needed_hint }) => {
                assert_ne!(needed_hint, Some(0), "Incomplete must ask for more bytes");
                continue;
            }
            Ok(Parsed::Complete { header, consumed }) => (header, consumed),
        };
        assert!(
            consumed > 0 && consumed <= data.len(),
            "consumed {consumed} of {}",
            data.len()
        );
        let own = &data[..consumed];
        let same = Ok(Parsed::Complete {
            header: header.clone(),
            consumed,
        });
        assert_eq!(
            Header::parse(own, accept),
            same,
            "trailing bytes changed the header"
        );
        assert_eq!(
            Header::parse(data, Accept::Any),
            same,
            "Any disagrees with {accept:?}"
        );
        for k in 0..consumed {
            match Header::parse(&own[..k], accept) {
                Ok(Parsed::Incomplete { .. }) => {}
                other => panic!("prefix of {k} bytes gave {other:?}"),
            }
        }

        let mut out = Vec::new();
        let n = match header.emit(&mut out) {
            Ok(n) => n,
            Err(e) => panic!("parsed header {header:?} does not re-emit: {e}"),
        };
        assert_eq!(n, out.len());
        assert_eq!(n, header.encoded_len());
        let canonical = header.canonical();
        assert_eq!(
            canonical.canonical(),
            canonical,
            "canonical() is not idempotent"
        );
        assert_eq!(
            Header::parse(&out, accept),
            Ok(Parsed::Complete {
                header: canonical,
                consumed: n,
            }),
            "re-emitted bytes do not parse back"
        );
    }
}
