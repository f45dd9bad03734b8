//! Driving rustls's unbuffered state machine for one session: feeding it
//! the ciphertext waiting in nvelox's input buffer, taking the records it
//! produces into the output buffer, the plaintext it decrypts into the
//! caller's buffer (the rest into the plaintext buffer), encrypting a
//! write and queueing close_notify.
//!
//! Owns: [`advance`] (one pass until rustls needs more input or has
//! nothing left to do), the alert sent after an error, and sizing output
//! room for rustls's encoders. Does not own sockets or end-of-stream state
//! (`session`) or buffer storage (`buffers`).

use rustls::client::ClientConnectionData;
use rustls::server::ServerConnectionData;
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncodeTlsData, EncryptError, InsufficientSizeError,
    UnbufferedConnectionCommon, UnbufferedStatus, WriteTraffic,
};
use rustls::CommonState;

use super::buffers::Buf;

/// A session's buffers (see `session`).
#[derive(Default)]
pub struct Buffers {
    /// Ciphertext read but not yet processed.
    pub input: Buf,
    /// Plaintext decrypted but not yet taken.
    pub plain: Buf,
    /// Records not yet sent.
    pub output: Buf,
}

/// What one [`advance`] did.
#[derive(Default)]
pub struct Progress {
    /// Plaintext bytes put into the caller's buffer.
    pub delivered: usize,
    /// Plaintext bytes taken from `write`.
    pub wrote: usize,
    /// The peer's close_notify was processed.
    pub peer_closed: bool,
}

/// The two sides' unbuffered connections, for one [`advance`].
pub trait Records: std::ops::Deref<Target = CommonState> {
    type Data;
    fn records<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data>;
}

impl Records for UnbufferedConnectionCommon<ServerConnectionData> {
    type Data = ServerConnectionData;
    fn records<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, ServerConnectionData> {
        self.process_tls_records(incoming)
    }
}

impl Records for UnbufferedConnectionCommon<ClientConnectionData> {
    type Data = ClientConnectionData;
    fn records<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, ClientConnectionData> {
        self.process_tls_records(incoming)
    }
}

/// Drives rustls's state machine over the buffered ciphertext until it
/// needs more input or has nothing left to do (or `sink` is full).
pub fn advance<C: Records>(
    conn: &mut C,
    bufs: &mut Buffers,
    mut sink: Option<&mut [u8]>,
    mut write: Option<&[u8]>,
    mut close: bool,
) -> Result<Progress, rustls::Error> {
    let Buffers {
        input,
        plain,
        output,
    } = bufs;
    let mut done = Progress::default();
    // Bounded: each turn consumes input, produces a record or stops; the
    // bound only guards against a state machine that would not.
    for _ in 0..10_000 {
        let UnbufferedStatus { discard, state } = conn.records(input.filled_mut());
        let step: Result<bool, rustls::Error> = match state {
            Err(e) => Err(e),
            Ok(ConnectionState::ReadTraffic(mut r)) => {
                let mut extra = 0;
                let mut res = Ok(());
                while let Some(rec) = r.next_record() {
                    match rec {
                        Ok(rec) => {
                            extra += rec.discard;
                            let mut payload = rec.payload;
                            if let Some(s) = sink.as_deref_mut() {
                                let n = payload.len().min(s.len() - done.delivered);
                                s[done.delivered..done.delivered + n]
                                    .copy_from_slice(&payload[..n]);
                                done.delivered += n;
                                payload = &payload[n..];
                            }
                            plain.extend(payload);
                        }
                        Err(e) => {
                            res = Err(e);
                            break;
                        }
                    }
                }
                input.consume(extra);
                // Stop once the caller's buffer is full.
                res.map(|_| sink.as_ref().is_some_and(|s| done.delivered == s.len()))
            }
            Ok(ConnectionState::PeerClosed) => {
                done.peer_closed = true;
                Ok(false)
            }
            Ok(ConnectionState::Closed) => {
                done.peer_closed = true;
                Ok(true)
            }
            Ok(ConnectionState::EncodeTlsData(mut e)) => encode(&mut e, output).map(|_| false),
            Ok(ConnectionState::TransmitTlsData(t)) => {
                // The records wait in `output`; flush sends them in order.
                t.done();
                Ok(false)
            }
            Ok(ConnectionState::BlockedHandshake) => Ok(true),
            Ok(ConnectionState::WriteTraffic(mut w)) => {
                let mut res = Ok(());
                if let Some(data) = write.take() {
                    res = encrypt(&mut w, data, output).map(|n| done.wrote = n);
                }
                if close && res.is_ok() {
                    close = false;
                    res = close_notify(&mut w, output);
                }
                res.map(|_| true)
            }
            Ok(_) => Err(rustls::Error::General("unexpected TLS early data".into())),
        };
        input.consume(discard);
        match step {
            Ok(false) => {}
            Ok(true) => return Ok(done),
            Err(e) => {
                drain_alert(conn, input, output);
                return Err(e);
            }
        }
    }
    Err(rustls::Error::General(
        "TLS state machine did not settle".into(),
    ))
}

/// After an error: the alert rustls queued, into `output` (best effort).
/// Only while rustls still has records queued: those are handed out
/// before it looks at the input again, which it must not (it would fail
/// on the same bytes a second time).
fn drain_alert<C: Records>(conn: &mut C, input: &mut Buf, output: &mut Buf) {
    for _ in 0..8 {
        if !conn.wants_write() {
            return;
        }
        let UnbufferedStatus { state, .. } = conn.records(input.filled_mut());
        let Ok(ConnectionState::EncodeTlsData(mut e)) = state else {
            return;
        };
        if encode(&mut e, output).is_err() {
            return;
        }
    }
}

fn sized<E>(
    output: &mut Buf,
    mut need: usize,
    mut put: impl FnMut(&mut [u8]) -> Result<usize, E>,
    too_small: impl Fn(&E) -> Option<usize>,
) -> Result<usize, E> {
    loop {
        let room = output.spare(need);
        match put(room) {
            Ok(n) => {
                output.commit(n);
                return Ok(n);
            }
            Err(e) => match too_small(&e) {
                Some(required) if required > need => need = required,
                _ => {
                    // Gives the storage back when nothing waits.
                    output.commit(0);
                    return Err(e);
                }
            },
        }
    }
}

/// A handshake record (or alert, ticket, key update) into `output`.
fn encode<D>(e: &mut EncodeTlsData<'_, D>, output: &mut Buf) -> Result<(), rustls::Error> {
    sized(
        output,
        512,
        |room| e.encode(room),
        |err| match err {
            EncodeError::InsufficientSize(InsufficientSizeError { required_size }) => {
                Some(*required_size)
            }
            _ => None,
        },
    )
    .map(|_| ())
    .map_err(|err| rustls::Error::General(err.to_string()))
}

fn encrypt_too_small(err: &EncryptError) -> Option<usize> {
    match err {
        EncryptError::InsufficientSize(InsufficientSizeError { required_size }) => {
            Some(*required_size)
        }
        _ => None,
    }
}

/// `data` encrypted into records in `output`; the count of plaintext
/// bytes taken (all of them).
fn encrypt<D>(
    w: &mut WriteTraffic<'_, D>,
    data: &[u8],
    output: &mut Buf,
) -> Result<usize, rustls::Error> {
    // Plaintext plus a generous per-record overhead; rustls says if not.
    let need = data.len() + (data.len() / (16 * 1024) + 2) * 64;
    sized(
        output,
        need,
        |room| w.encrypt(data, room),
        encrypt_too_small,
    )
    .map(|_| data.len())
    .map_err(|err| rustls::Error::General(err.to_string()))
}

fn close_notify<D>(w: &mut WriteTraffic<'_, D>, output: &mut Buf) -> Result<(), rustls::Error> {
    sized(
        output,
        128,
        |room| w.queue_close_notify(room),
        encrypt_too_small,
    )
    .map(|_| ())
    .map_err(|err| rustls::Error::General(err.to_string()))
}
