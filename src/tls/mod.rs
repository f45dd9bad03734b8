//! TLS for nvelox: the ClientHello peeker for `sni_routes` (always built:
//! passthrough needs no cryptography) and, with the `tls` cargo feature
//! (default on), the rustls glue.
//!
//! Owns: reading a server name out of a ClientHello (`client_hello`);
//! loading a listener's `tls:` block and choosing certificates by SNI
//! (`server`); a backend's `backend_tls:` (`client`); the plaintext adapter over a rustls
//! unbuffered connection on a non-blocking socket (`session`; a socket or
//! the socket through its session as one stream: `plaintext`), which drives rustls
//! (`records`) over buffers nvelox owns and frees when empty (`buffers`); the facts read from certificates
//! (`x509`); for tests only, a session driven against a rustls peer in
//! memory (`test_support`, hidden from the docs). Built without the feature, [`ServerTls`] and [`TlsSession`]
//! are empty enums: the shell's code stays the same and no value of them
//! can exist (the configuration refuses `tls:` with "built without TLS").
//! Does not own sockets, phases or routing (`tcp/`).

#[cfg(feature = "tls")]
mod buffers;
#[cfg(feature = "tls")]
pub mod client;
pub mod client_hello;
pub mod plaintext;
#[cfg(feature = "tls")]
mod records;
#[cfg(feature = "tls")]
pub mod server;
#[cfg(feature = "tls")]
pub mod session;
#[cfg(feature = "tls")]
#[doc(hidden)]
pub mod test_support;
pub mod x509;

#[cfg(feature = "tls")]
pub use client::{ClientTls, ClientTlsId};
#[cfg(feature = "tls")]
pub use server::ServerTls;
#[cfg(feature = "tls")]
pub use session::{Handshake, TlsIo, TlsSession};

#[cfg(not(feature = "tls"))]
mod disabled;
#[cfg(not(feature = "tls"))]
pub use disabled::{ClientTls, ClientTlsId, Handshake, ServerTls, TlsIo, TlsSession};

pub use plaintext::Plaintext;

/// The error for a TLS key in a binary built without the `tls` feature.
pub const BUILT_WITHOUT_TLS: &str =
    "this nvelox was built without TLS (cargo feature `tls`); rebuild with default features";
