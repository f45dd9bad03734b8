//! nvelox: a layer-4 TCP and UDP load balancer.
pub mod backend;
pub mod balancer;
pub mod config;
pub mod proxy_protocol;
