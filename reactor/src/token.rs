//! Tokens: newtype handles over a `Slab` of caller-defined tags.
//!
//! A [`Token`] names one registered event source. The tag stored under it
//! says what the source is (a listener, one side of a connection, ...).
//! Removing a token does not free its slot at once: the slot stays reserved
//! until the end of the current loop iteration, so an event for a source
//! closed earlier in the same iteration finds `None` instead of a new,
//! unrelated tag (the classic stale-token bug). The event loop calls
//! [`Tokens::release_removed`] at the end of each iteration, after dropping
//! the re-queued entries of removed tokens.

use slab::Slab;

/// A handle for a registered event source. Converts to and from `mio::Token`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub usize);

impl From<Token> for mio::Token {
    fn from(t: Token) -> mio::Token {
        mio::Token(t.0)
    }
}

impl From<mio::Token> for Token {
    fn from(t: mio::Token) -> Token {
        Token(t.0)
    }
}

/// Token slots: `Some(tag)` while live, `None` while removed but not yet released.
#[derive(Debug)]
pub struct Tokens<T> {
    slots: Slab<Option<T>>,
    removed: Vec<usize>,
}

impl<T> Default for Tokens<T> {
    fn default() -> Self {
        Tokens {
            slots: Slab::new(),
            removed: Vec::new(),
        }
    }
}

impl<T> Tokens<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reserves a token for `tag`.
    pub fn insert(&mut self, tag: T) -> Token {
        Token(self.slots.insert(Some(tag)))
    }

    /// The tag of a live token; `None` once removed (even within the batch).
    pub fn get(&self, token: Token) -> Option<&T> {
        self.slots.get(token.0).and_then(Option::as_ref)
    }

    pub fn get_mut(&mut self, token: Token) -> Option<&mut T> {
        self.slots.get_mut(token.0).and_then(Option::as_mut)
    }

    /// Removes a token's tag. The slot is reused only after
    /// [`release_removed`](Self::release_removed).
    pub fn remove(&mut self, token: Token) -> Option<T> {
        let tag = self.slots.get_mut(token.0)?.take()?;
        self.removed.push(token.0);
        Some(tag)
    }

    /// Frees the slots removed since the last call. Called by the event loop
    /// between batches; call it yourself only if you drive `Tokens` by hand.
    pub fn release_removed(&mut self) {
        for key in self.removed.drain(..) {
            self.slots.remove(key);
        }
    }

    /// Live tokens (removed-but-unreleased slots are not counted).
    pub fn len(&self) -> usize {
        self.slots.len() - self.removed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_token_is_not_reused_within_the_batch() {
        let mut t = Tokens::new();
        let a = t.insert("a");
        assert_eq!(t.remove(a), Some("a"));
        let b = t.insert("b");
        assert_ne!(a, b, "slot reused before the batch ended");
        assert_eq!(t.get(a), None);
        assert_eq!(t.remove(a), None, "double remove is harmless");
        t.release_removed();
        let c = t.insert("c");
        assert_eq!(c, a, "slot is reused after the batch");
        assert_eq!(t.get(c), Some(&"c"));
        assert_eq!(t.len(), 2);
    }
}
