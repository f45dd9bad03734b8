//! The two facts nvelox reads from a certificate itself: the DNS names it
//! is for (subjectAltName), which `certificates:` are chosen by, and when
//! it expires (validity.notAfter), which `--check` warns about.
//!
//! Owns: a minimal, bounds-checked DER walk of an X.509 certificate down to
//! those two fields. Does not own verification (rustls and webpki do that
//! for handshakes) or PEM decoding (rustls-pki-types).

/// DER tags used here.
const SEQUENCE: u8 = 0x30;
const EXPLICIT_0: u8 = 0xa0;
const EXPLICIT_3: u8 = 0xa3;
const OCTET_STRING: u8 = 0x04;
const BOOLEAN: u8 = 0x01;
const OID: u8 = 0x06;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// GeneralName `dNSName [2] IA5String`, implicitly tagged.
const DNS_NAME: u8 = 0x82;
/// 2.5.29.17 subjectAltName.
const OID_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

/// What nvelox needs from a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFacts {
    /// subjectAltName DNS names, lowercase (`*.example.com` kept as written).
    pub dns_names: Vec<String>,
    /// notAfter in seconds since the Unix epoch.
    pub not_after: i64,
}

/// One DER element: its tag and contents; `rest` follows it.
struct Tlv<'a> {
    tag: u8,
    body: &'a [u8],
    rest: &'a [u8],
}

fn tlv(input: &[u8]) -> Option<Tlv<'_>> {
    let (&tag, after) = input.split_first()?;
    let (&first, after) = after.split_first()?;
    let (len, after) = if first < 0x80 {
        (usize::from(first), after)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || after.len() < n {
            return None;
        }
        let len = after[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &after[n..])
    };
    if after.len() < len {
        return None;
    }
    Some(Tlv {
        tag,
        body: &after[..len],
        rest: &after[len..],
    })
}

/// The element at the start of `input`, which must carry `tag`.
fn expect(input: &[u8], tag: u8) -> Option<Tlv<'_>> {
    tlv(input).filter(|t| t.tag == tag)
}

/// Reads the names and expiry of a DER certificate; `None` when it is not
/// one this walk understands.
pub fn facts(der: &[u8]) -> Option<CertFacts> {
    let cert = expect(der, SEQUENCE)?;
    let tbs = expect(cert.body, SEQUENCE)?;
    let mut at = tbs.body;
    if let Some(version) = expect(at, EXPLICIT_0) {
        at = version.rest;
    }
    let serial = tlv(at)?;
    let signature = expect(serial.rest, SEQUENCE)?;
    let issuer = expect(signature.rest, SEQUENCE)?;
    let validity = expect(issuer.rest, SEQUENCE)?;
    let not_before = tlv(validity.body)?;
    let not_after = time(&tlv(not_before.rest)?)?;
    let subject = expect(validity.rest, SEQUENCE)?;
    let spki = expect(subject.rest, SEQUENCE)?;
    // Optional issuerUniqueID [1], subjectUniqueID [2], extensions [3].
    let mut at = spki.rest;
    let mut dns_names = Vec::new();
    while let Some(field) = tlv(at) {
        if field.tag == EXPLICIT_3 {
            dns_names = san_names(field.body)?;
        }
        at = field.rest;
    }
    Some(CertFacts {
        dns_names,
        not_after,
    })
}

fn san_names(extensions: &[u8]) -> Option<Vec<String>> {
    let list = expect(extensions, SEQUENCE)?;
    let mut at = list.body;
    while !at.is_empty() {
        let ext = expect(at, SEQUENCE)?;
        at = ext.rest;
        let oid = expect(ext.body, OID)?;
        if oid.body != OID_SUBJECT_ALT_NAME {
            continue;
        }
        let mut value = oid.rest;
        if let Some(critical) = expect(value, BOOLEAN) {
            value = critical.rest;
        }
        let octets = expect(value, OCTET_STRING)?;
        let names = expect(octets.body, SEQUENCE)?;
        let mut out = Vec::new();
        let mut n = names.body;
        while let Some(name) = tlv(n) {
            if name.tag == DNS_NAME {
                out.push(String::from_utf8_lossy(name.body).to_ascii_lowercase());
            }
            n = name.rest;
        }
        return Some(out);
    }
    Some(Vec::new())
}

/// UTCTime `YYMMDDHHMMSSZ` or GeneralizedTime `YYYYMMDDHHMMSSZ`, as Unix seconds.
fn time(t: &Tlv<'_>) -> Option<i64> {
    let s = t.body;
    let (year, rest) = match t.tag {
        UTC_TIME if s.len() == 13 => {
            let yy = digits(&s[..2])?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &s[2..])
        }
        GENERALIZED_TIME if s.len() == 15 => (digits(&s[..4])?, &s[4..]),
        _ => return None,
    };
    if rest.last() != Some(&b'Z') {
        return None;
    }
    let month = digits(&rest[0..2])?;
    let day = digits(&rest[2..4])?;
    let hour = digits(&rest[4..6])?;
    let min = digits(&rest[6..8])?;
    let sec = digits(&rest[8..10])?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec)
}

fn digits(b: &[u8]) -> Option<i64> {
    b.iter().try_fold(0i64, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_convert_to_unix_seconds() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        let utc = Tlv {
            tag: UTC_TIME,
            body: b"491231235959Z",
            rest: &[],
        };
        assert_eq!(time(&utc), Some(2_524_607_999));
        let gen = Tlv {
            tag: GENERALIZED_TIME,
            body: b"20500101000000Z",
            rest: &[],
        };
        assert_eq!(time(&gen), Some(2_524_608_000));
        let bad = Tlv {
            tag: UTC_TIME,
            body: b"49123123595XZ",
            rest: &[],
        };
        assert_eq!(time(&bad), None);
    }

    #[test]
    fn a_real_certificate_gives_its_names_and_expiry() {
        let pem = include_str!("../../tests/go_compat/certs/test-server.pem");
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64(&b64);
        let f = facts(&der).expect("parses");
        assert_eq!(
            f.dns_names,
            ["localhost", "test.localhost", "www.test.localhost"]
        );
        // Made with -days 36500 on 2026-12-02: a century ahead.
        assert!(f.not_after > 4_900_000_000, "{}", f.not_after);
        for cut in 0..der.len() {
            let _ = facts(&der[..cut]);
        }
    }

    /// Standard base64, enough for a PEM body.
    fn base64(s: &str) -> Vec<u8> {
        let val = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            _ => 63,
        };
        let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').map(val).collect();
        let mut out = Vec::new();
        for chunk in bytes.chunks(4) {
            let mut n = 0u32;
            for (i, &b) in chunk.iter().enumerate() {
                n |= u32::from(b) << (18 - 6 * i);
            }
            let take = chunk.len() * 6 / 8;
            out.extend_from_slice(&n.to_be_bytes()[1..1 + take]);
        }
        out
    }

    #[test]
    fn garbage_and_truncated_input_give_none() {
        assert_eq!(facts(&[]), None);
        assert_eq!(facts(&[0x30, 0x82, 0xff]), None);
        assert_eq!(facts(&[0x30, 0x03, 0x30, 0x01, 0x00]), None);
        for n in 0..40 {
            let v: Vec<u8> = (0..n).map(|i| (i * 37) as u8).collect();
            let _ = facts(&v);
        }
    }
}
