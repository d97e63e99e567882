//! Identifiers as the AT Protocol spells them: TIDs (record keys, chat
//! revs and ids), CIDs, `did:plc` DIDs, and the signed JWTs of a session.
//! They only have to look real and sort right: nothing here is checked
//! against a DID directory or a block store.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::{digest, hmac};
use serde_json::{Value, json};

use crate::domain::clock::Millis;

/// The base32-sortable alphabet of TIDs: its order is the byte order, so
/// TIDs compare as strings in the order they were made.
const SORTABLE: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";

/// RFC 4648 base32 in lower case: the multibase `b` of CIDs, and the body
/// of a `did:plc`.
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// The 13-character TID of a 64-bit value (its top bit zero).
pub(super) fn tid_of(v: u64) -> String {
    let mut out = [0u8; 13];
    let mut n = v;
    for slot in out.iter_mut().rev() {
        *slot = SORTABLE[(n & 31) as usize];
        n >>= 5;
    }
    out.iter().map(|&b| b as char).collect()
}

/// Whether `s` is a TID: 13 characters of the sortable alphabet, the first
/// one of `234567abcdefghij` (the top bit of the 64-bit value is zero).
pub(super) fn is_tid(s: &str) -> bool {
    s.len() == 13
        && s.bytes().all(|b| SORTABLE.contains(&b))
        && b"234567abcdefghij".contains(&s.as_bytes()[0])
}

/// Makes TIDs as a PDS does: microseconds since the epoch (53 bits) then a
/// 10-bit clock id, strictly increasing even within one microsecond.
#[derive(Debug)]
pub(super) struct TidClock {
    last: u64,
    clock_id: u64,
}

impl TidClock {
    pub(super) fn new(clock_id: u64) -> TidClock {
        TidClock {
            last: 0,
            clock_id: clock_id & 0x3ff,
        }
    }

    /// The next TID at `now` (Unix ms): never below one already made, so
    /// chat revs and record keys only grow.
    pub(super) fn next(&mut self, now: Millis) -> String {
        let micros = (now.max(0) as u64).saturating_mul(1000) & ((1 << 53) - 1);
        let v = ((micros << 10) | self.clock_id).max(self.last + 1);
        self.last = v;
        tid_of(v)
    }
}

/// Lower-case RFC 4648 base32 without padding.
fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32[((buf >> bits) & 31) as usize] as char);
        }
        buf &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(BASE32[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// A CIDv1 (dag-cbor, sha2-256) of `content`, spelled as the PDS spells
/// it (`bafyrei…`). The hash is of our bytes, not of DAG-CBOR: it only
/// has to be deterministic and change with the content.
pub(super) fn cid_of(content: &[u8]) -> String {
    let mut bytes = vec![0x01, 0x71, 0x12, 0x20];
    bytes.extend_from_slice(digest::digest(&digest::SHA256, content).as_ref());
    format!("b{}", base32(&bytes))
}

/// The `did:plc` of a handle: `did:plc:` and 24 base32 characters, as the
/// PLC directory makes them (from a hash), so a handle keeps its DID.
pub(super) fn did_for(handle: &str) -> String {
    let hash = digest::digest(&digest::SHA256, handle.as_bytes());
    format!("did:plc:{}", &base32(hash.as_ref())[..24])
}

/// Base64url without padding, as JWTs use it.
pub(super) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWT `header.payload.signature`, signed with HMAC-SHA256 as the
/// reference PDS signs its session tokens (`typ` is `at+jwt` for access
/// tokens, `refresh+jwt` for refresh tokens).
pub(super) fn sign(key: &hmac::Key, typ: &str, claims: &Value) -> String {
    let header = json!({"typ": typ, "alg": "HS256"});
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let tag = hmac::sign(key, input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

/// The claims of a token this PDS signed; `None` for anything else
/// (garbled, another key, tampered with).
pub(super) fn verify(key: &hmac::Key, token: &str) -> Option<Value> {
    let mut parts = token.split('.');
    let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    hmac::verify(key, format!("{header}.{payload}").as_bytes(), &signature).ok()?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims.is_object().then_some(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tids_are_valid_and_grow_within_one_millisecond() {
        let mut c = TidClock::new(7);
        let a = c.next(1_700_000_000_000);
        let b = c.next(1_700_000_000_000);
        assert!(is_tid(&a) && is_tid(&b), "{a} {b}");
        assert!(b > a);
        assert!(!is_tid("3jzfcijpj2z2aa"), "14 characters");
        assert!(!is_tid("kjzfcijpj2z2a"), "top bit set");
        assert!(!is_tid("3jzfcijpj2z2A"), "upper case");
        assert!(!is_tid("3jzfcijpj2z21"), "1 is not in the alphabet");
    }

    #[test]
    fn cids_and_dids_look_like_the_real_ones() {
        let cid = cid_of(b"{}");
        assert!(cid.starts_with("bafyrei") && cid.len() == 59, "{cid}");
        let did = did_for("alice.test");
        assert_eq!(did.len(), "did:plc:".len() + 24);
        assert!(did["did:plc:".len()..].bytes().all(|b| BASE32.contains(&b)));
        assert_eq!(did, did_for("alice.test"));
    }

    #[test]
    fn a_jwt_verifies_only_as_signed() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"k");
        let t = sign(&key, "at+jwt", &json!({"sub": "did:plc:x"}));
        assert_eq!(t.split('.').count(), 3);
        assert_eq!(verify(&key, &t).unwrap()["sub"], "did:plc:x");
        let other = hmac::Key::new(hmac::HMAC_SHA256, b"other");
        assert!(verify(&other, &t).is_none());
        assert!(verify(&key, "garbage").is_none());
        assert!(verify(&key, &format!("{t}x")).is_none());
    }
}
