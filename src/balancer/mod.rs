//! Load-balancing algorithms behind the `Balancer` trait (pure).
