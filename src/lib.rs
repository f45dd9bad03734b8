//! nvelox: a layer-4 TCP and UDP load balancer.
pub mod backend;
pub mod balancer;
pub mod cli;
pub mod config;
pub mod proxy_protocol;
pub mod run;
