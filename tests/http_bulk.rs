//! Large responses through `protocol: http`: a transfer that keeps one
//! connection busy for longer than its per-wake-up budget must go on to
//! the end (it stalled when the budget ran out after the last readiness
//! edge: epoll does not repeat an edge, so nothing woke it again).

mod common;
#[path = "common/origin.rs"]
mod origin;

use std::sync::Arc;
use std::time::Duration;

use origin::*;

#[test]
fn large_responses_are_relayed_to_the_end() {
    let body = Arc::new(ok(&vec![b'x'; 24 << 20]));
    let b2 = Arc::clone(&body);
    let a = Origin::start(Arc::new(move |_| Answer::Raw(b2.to_vec())));
    let (_n, port) = start_http(&[&a], "", "    keepalive: 4\n");
    for round in 0..24 {
        let mut c = Client::connect(port);
        c.r.get_ref()
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        c.send(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
        let r = read_response(&mut c.r, false)
            .unwrap_or_else(|| panic!("round {round}: the response stopped before its end"));
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), 24 << 20, "round {round}");
    }
}
