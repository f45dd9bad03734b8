//! The UDP listener sockets of one loop, by slot.
//!
//! Owns the slot numbering: a slot index names a listener socket in event
//! tags (`Tag::UdpListener`) and in session keys (`FlowKey::listener`). A
//! reload frees the slots of removed listeners and the next added listener
//! takes a freed slot, so the table stays as large as the most listeners
//! ever open at once, however many reloads add and remove listeners.
//! It does not own registration with the loop or the sessions of a slot
//! (`udp/mod.rs` ends those before a slot is freed).

use reactor::Token;
use slab::Slab;

use super::{UdpListenerSock, UdpSlot};
use crate::config::ListenerId;

pub(super) struct ListenerSlot {
    pub(super) l: UdpListenerSock,
    pub(super) token: Option<Token>,
}

pub(super) struct ListenerSlots {
    slots: Slab<ListenerSlot>,
}

impl ListenerSlots {
    pub(super) fn new(listeners: Vec<UdpListenerSock>) -> ListenerSlots {
        let mut slots = Slab::with_capacity(listeners.len());
        for l in listeners {
            slots.insert(ListenerSlot { l, token: None });
        }
        ListenerSlots { slots }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Memory held for slots, open or free: what a reload loop must not grow.
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.slots.capacity()
    }

    pub(super) fn get(&self, i: UdpSlot) -> Option<&ListenerSlot> {
        self.slots.get(i.0)
    }

    pub(super) fn get_mut(&mut self, i: UdpSlot) -> Option<&mut ListenerSlot> {
        self.slots.get_mut(i.0)
    }

    /// Slot indexes of the open listeners.
    pub(super) fn ids(&self) -> Vec<UdpSlot> {
        self.slots.iter().map(|(i, _)| UdpSlot(i)).collect()
    }

    /// Puts an added listener into a free slot (or a new one); its index.
    pub(super) fn insert(&mut self, l: UdpListenerSock) -> UdpSlot {
        UdpSlot(self.slots.insert(ListenerSlot { l, token: None }))
    }

    /// Takes out the listeners whose plan index maps to nothing in `keep`
    /// (`keep[old plan index]`), freeing their slots for reuse.
    pub(super) fn remove_unkept(
        &mut self,
        keep: &[Option<ListenerId>],
    ) -> Vec<(UdpSlot, ListenerSlot)> {
        let gone: Vec<usize> = self
            .slots
            .iter()
            .filter(|(_, s)| keep.get(s.l.plan.0).copied().flatten().is_none())
            .map(|(i, _)| i)
            .collect();
        gone.into_iter()
            .map(|i| (UdpSlot(i), self.slots.remove(i)))
            .collect()
    }

    /// Gives kept listeners their index in the new plan.
    pub(super) fn relabel(&mut self, keep: &[Option<ListenerId>]) {
        for (_, slot) in self.slots.iter_mut() {
            if let Some(Some(j)) = keep.get(slot.l.plan.0) {
                slot.l.plan = *j;
            }
        }
    }

    /// Takes every listener out (shutdown).
    pub(super) fn drain(&mut self) -> Vec<ListenerSlot> {
        self.slots.drain().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::net::UdpSocket;

    fn sock(plan: usize) -> UdpListenerSock {
        let sock = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = sock.local_addr().unwrap().port();
        UdpListenerSock {
            plan: ListenerId(plan),
            port,
            sock,
        }
    }

    #[test]
    fn reloads_that_add_and_remove_a_listener_reuse_its_slot() {
        // Plan: listener 0 always there, listener 1 added then removed.
        let mut slots = ListenerSlots::new(vec![sock(0)]);
        for _ in 0..1000 {
            let added = slots.insert(sock(1));
            assert_eq!(added, UdpSlot(1), "the freed slot is taken again");
            assert_eq!(slots.ids(), vec![UdpSlot(0), UdpSlot(1)]);
            let removed = slots.remove_unkept(&[Some(ListenerId(0)), None]);
            assert_eq!(removed.len(), 1);
            assert_eq!(removed[0].0, UdpSlot(1));
            assert_eq!(removed[0].1.l.plan, ListenerId(1));
            assert_eq!(slots.ids(), vec![UdpSlot(0)]);
        }
        assert!(slots.capacity() <= 4, "slots grew: {}", slots.capacity());
        assert_eq!(slots.get(UdpSlot(0)).map(|s| s.l.plan), Some(ListenerId(0)));
        assert!(slots.get(UdpSlot(1)).is_none());
    }

    #[test]
    fn a_kept_listener_keeps_its_slot_and_takes_its_new_plan_index() {
        let mut slots = ListenerSlots::new(vec![sock(0), sock(1), sock(2)]);
        let port1 = slots.get(UdpSlot(1)).unwrap().l.port;
        // New plan: old 1 is new 0; old 0 and 2 are gone; one listener added.
        let keep = [None, Some(ListenerId(0)), None];
        let removed: Vec<UdpSlot> = slots
            .remove_unkept(&keep)
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        assert_eq!(removed, vec![UdpSlot(0), UdpSlot(2)]);
        slots.relabel(&keep);
        let added = slots.insert(sock(1));
        assert!(
            added == UdpSlot(0) || added == UdpSlot(2),
            "a freed slot is reused: {added:?}"
        );
        let kept = slots.get(UdpSlot(1)).unwrap();
        assert_eq!((kept.l.plan, kept.l.port), (ListenerId(0), port1));
        assert_eq!(slots.drain().len(), 2);
        assert!(slots.is_empty());
    }
}
