//! nvelox: a layer-4 TCP and UDP load balancer on a hand-rolled mio reactor.
//!
//! Pure cores (config, access control, balancer, health state, PROXY protocol, HTTP/1
//! core, reload mapping, the TCP connection state machine and relay
//! direction, the UDP flow table) are unit tested without sockets; `worker`,
//! `tcp`, `udp`, `health` and `run` are the thin shell that drives them from
//! the reactor. The README's layout table and docs/architecture.md list
//! every module.
pub mod acl;
pub mod admin;
pub mod backend_rt;
pub mod balancer;
pub mod cli;
pub mod clock;
pub mod config;
pub mod events;
pub mod health;
pub mod http;
pub mod http_proxy;
pub mod limits;
pub mod logging;
pub mod maglev_rt;
pub mod metrics;
pub mod proxy_protocol;
pub mod reload;
pub mod run;
pub mod runtime;
pub mod tcp;
pub mod tls;
pub mod udp;
pub mod worker;
