//! PROXY protocol v1/v2 parse and emit.
