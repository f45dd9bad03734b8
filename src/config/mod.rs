//! Configuration: YAML files -> a validated [`Plan`].
//!
//! `raw` mirrors the YAML, `validate` turns it into the plan (reading
//! includes through `include`, durations through `duration`, sizes through `size`, server
//! addresses through `address`), and `locate` finds the line of a YAML path
//! for error messages. Nothing outside this module sees raw YAML.
pub mod address;
pub mod compat;
pub mod duration;
pub mod error;
pub mod escape;
pub mod include;
pub mod locate;
pub mod plan;
pub mod raw;
pub mod size;
pub mod validate;
pub mod vhost;

pub use duration::{parse_duration, DurationError};
pub use error::{ConfigError, ConfigErrors};
pub use plan::*;
pub use size::{parse_size, SizeError};
pub use validate::{
    check_http_path, load, load_str, load_str_with, load_with, HttpPathError, MAX_HTTP_PATH_LEN,
    MAX_IDLE_TIMEOUT, MAX_TIMEOUT,
};
pub use vhost::VhostTable;
