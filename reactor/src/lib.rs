//! nvelox-reactor: a small explicit event-loop reactor over mio.
pub mod bind;
pub mod io;
pub mod listener;
pub mod splice;
pub mod sys;
pub mod udp;
