//! Configuration: YAML -> validated [`Plan`].
pub mod plan;
pub use plan::*;
