// The crafted mode of the `tls_session` oracle (`tls_session_check.rs`,
// which its includers include first): after a real handshake the client's
// keys are taken out of rustls, and the script sends records of any content
// type encrypted with them. Included by the fuzz target and by
// `tests/tls_session_fuzz.rs`.

use rustls::crypto::cipher::{MessageEncrypter, OutboundChunks, OutboundPlainMessage};
use rustls::{ConnectionTrafficSecrets, ContentType, ProtocolVersion, SupportedCipherSuite};

/// Encrypts records with keys taken out of a client after its handshake.
pub struct Crafter {
    enc: Box<dyn MessageEncrypter>,
    seq: u64,
}

impl Crafter {
    pub fn new(client: Connection, tls12: bool) -> Crafter {
        let (seq, secrets) = client.dangerous_extract_secrets().unwrap().tx;
        let ConnectionTrafficSecrets::Aes128Gcm { key, iv } = secrets else {
            panic!("not AES-128-GCM");
        };
        let enc = if tls12 {
            let SupportedCipherSuite::Tls12(cs) =
                rustls::crypto::ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            else {
                unreachable!()
            };
            cs.aead_alg
                .encrypter(key, &iv.as_ref()[..4], &iv.as_ref()[4..])
        } else {
            let SupportedCipherSuite::Tls13(cs) =
                rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256
            else {
                unreachable!()
            };
            cs.aead_alg.encrypter(key, iv)
        };
        Crafter { enc, seq }
    }

    /// One record of content type `typ` carrying `payload`.
    pub fn record(&mut self, typ: ContentType, payload: &[u8]) -> Vec<u8> {
        let msg = OutboundPlainMessage {
            typ,
            version: ProtocolVersion::TLSv1_2,
            payload: OutboundChunks::Single(payload),
        };
        let out = self.enc.encrypt(msg, self.seq).unwrap().encode();
        self.seq += 1;
        out
    }
}

fn content_type(b: u8) -> ContentType {
    match b % 6 {
        0 => ContentType::ApplicationData,
        1 => ContentType::Handshake,
        2 => ContentType::Alert,
        3 => ContentType::ChangeCipherSpec,
        4 => ContentType::Heartbeat,
        _ => ContentType::from(b),
    }
}

/// Mode 3: records of any type with the client's own keys.
pub fn check_crafted(tls12: bool, data: &[u8]) {
    let mut script = Script::new(data);
    let mut client = rustls_client(tls12);
    let mut w = Wire::new();
    let Some(mut s) = handshake(&mut client, &mut w, usize::MAX) else {
        return;
    };
    let mut crafter = Crafter::new(client, tls12);
    let mut pending: VecDeque<u8> = VecDeque::new();
    let mut failed = false;
    let mut got = Vec::new();
    while !script.done() && !failed {
        match script.u8() % 8 {
            0 => {
                let typ = content_type(script.u8());
                let n = usize::from(script.u8());
                let body = script.bytes(n).to_vec();
                pending.extend(crafter.record(typ, &body));
            }
            1 => {
                // A handshake message of any length, in fragments.
                let typ = script.u8();
                let len = script.u16() << 4;
                let frag = usize::from(script.u8()) * 64 + 1;
                let mut msg = vec![typ, (len >> 16) as u8, (len >> 8) as u8, len as u8];
                msg.resize(4 + len.min(70_000), 0);
                for part in msg.chunks(frag.min(16 * 1024)) {
                    pending.extend(crafter.record(ContentType::Handshake, part));
                }
            }
            2 => {
                // Many small records.
                let typ = content_type(script.u8());
                let count = script.u16() % 5000;
                let len = usize::from(script.u8() % 4);
                for _ in 0..count {
                    pending.extend(crafter.record(typ, &[b'x'; 3][..len]));
                }
            }
            3 => {
                let n = usize::from(script.u8());
                pending.extend(script.bytes(n));
            }
            4 => {
                let n = script.u16().max(1) * 4;
                let n = n.min(pending.len());
                w.rx.extend(pending.drain(..n));
            }
            5 => {
                let len = usize::from(script.u8()) * 128 + 1;
                failed = server_read(&mut s, &mut w, len, &mut got) == ReadEnd::Failed;
            }
            6 => {
                let n = script.u16();
                failed = server_write(&mut s, &mut w, &vec![b'y'; n]).is_err();
            }
            _ => w.room = usize::from(script.u8()) * 64,
        }
        assert_bounded(&s);
        let _ = s.flush(&mut w);
        if w.tx.len() > 1 << 20 {
            w.tx.clear();
        }
    }
    w.rx.extend(pending.drain(..));
    w.fin = true;
    if !failed {
        let end = server_read(&mut s, &mut w, 16 * 1024, &mut got);
        assert!(end != ReadEnd::Blocked, "a read at the end of the stream blocked");
    }
}
