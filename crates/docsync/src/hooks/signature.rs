//! The webhook's signature, as Stripe and GitHub do it: HMAC-SHA256 with the
//! shared secret over `"{timestamp}.{raw body}"`, sent as
//! `X-Docsync-Signature: sha256=<lowercase hex>` with `X-Docsync-Timestamp:
//! <unix seconds>`. A receiver recomputes it over the bytes it received
//! (before parsing them), compares in constant time, and refuses a timestamp
//! too far from its clock (a replayed request); [`verify`] does all three.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;

type HmacSha256 = Hmac<Sha256>;

/// The prefix of the signature header's value.
pub const SCHEME: &str = "sha256=";

/// How far a timestamp may be from the receiver's clock, by default.
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;

fn mac(secret: &Secret, timestamp: u64, body: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length
    let mut mac = match HmacSha256::new_from_slice(secret.expose().as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The signature header's value for `body` sent at `timestamp` (unix seconds).
pub fn sign(secret: &Secret, timestamp: u64, body: &[u8]) -> String {
    format!(
        "{SCHEME}{}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

/// Why a request's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The timestamp header is not a number.
    BadTimestamp,
    /// The timestamp is further than the tolerance from `now`.
    Stale { age_secs: u64 },
    /// The signature header is not `sha256=<hex>`.
    Malformed,
    /// The signature does not match the body (or another secret made it).
    Mismatch,
}

/// Check a received request: `timestamp` and `signature` are the headers'
/// values, `body` the raw bytes, `now` the receiver's clock (unix seconds).
pub fn verify(
    secret: &Secret,
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now: u64,
    tolerance_secs: u64,
) -> Result<(), Refused> {
    let ts: u64 = timestamp
        .trim()
        .parse()
        .map_err(|_| Refused::BadTimestamp)?;
    let age_secs = now.abs_diff(ts);
    if age_secs > tolerance_secs {
        return Err(Refused::Stale { age_secs });
    }
    let given = signature
        .trim()
        .strip_prefix(SCHEME)
        .and_then(|h| hex::decode(h).ok())
        .ok_or(Refused::Malformed)?;
    // verify_slice compares in constant time
    mac(secret, ts, body)
        .verify_slice(&given)
        .map_err(|_| Refused::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::new("whsec_test")
    }

    #[test]
    fn a_known_vector() {
        // printf %s '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test
        assert_eq!(
            sign(&secret(), 1_700_000_000, br#"{"a":1}"#),
            "sha256=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
    }

    #[test]
    fn verify_accepts_its_own_and_refuses_the_rest() {
        let body = br#"{"id":"e1","state":"approved"}"#;
        let sig = sign(&secret(), 1_000, body);
        assert_eq!(verify(&secret(), "1000", &sig, body, 1_010, 300), Ok(()));
        // another body, another secret, another timestamp
        assert_eq!(
            verify(&secret(), "1000", &sig, b"{}", 1_010, 300),
            Err(Refused::Mismatch)
        );
        assert_eq!(
            verify(&Secret::new("other"), "1000", &sig, body, 1_010, 300),
            Err(Refused::Mismatch)
        );
        assert_eq!(
            verify(&secret(), "1001", &sig, body, 1_010, 300),
            Err(Refused::Mismatch)
        );
        // a replay after the tolerance
        assert_eq!(
            verify(&secret(), "1000", &sig, body, 1_400, 300),
            Err(Refused::Stale { age_secs: 400 })
        );
        assert_eq!(
            verify(&secret(), "soon", &sig, body, 1_000, 300),
            Err(Refused::BadTimestamp)
        );
        assert_eq!(
            verify(&secret(), "1000", "md5=00", body, 1_000, 300),
            Err(Refused::Malformed)
        );
        assert_eq!(
            verify(&secret(), "1000", &sig[..sig.len() - 2], body, 1_000, 300),
            Err(Refused::Mismatch)
        );
    }
}
