//! nvelox-reactor: a small explicit event-loop reactor over mio.
pub mod bind;
