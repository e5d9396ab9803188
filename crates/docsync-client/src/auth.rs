//! Credentials and OAuth2 access tokens.
//!
//! Secrets live in [`Secret`], whose `Debug` and `Display` never show the value;
//! the value is read only where a header is built (and that header is marked
//! sensitive, so reqwest does not print it either).
//!
//! # Token lifetime
//!
//! OAuth 2.0 (RFC 6749, section 5.1) defines a token answer's `expires_in` as
//! the seconds from now until the token expires; Moov's own spec describes it
//! as the Unix time at which it expires (its example is `1736964352`). Both are
//! accepted, told apart by size (see [`token_lifetime`]): a value up to
//! [`MAX_EXPIRES_IN_SECONDS`] (ten years) is seconds from now, a larger one can
//! only be a time. Either way the token is refreshed a margin before it expires
//! (see `CachedToken::new`), and one that is already expired serves only the
//! request it was fetched for.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A password, token or API key. `Debug` prints `Secret(***)`, `Display` `***`;
/// there is no `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(Arc::from(value.into()))
    }

    /// The secret's value: use it only to build a request.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Read from configuration files as a plain string.
impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

/// How a Moov client authenticates.
#[derive(Clone, Debug)]
pub enum MoovCredentials {
    /// HTTP Basic with the account's public key and secret key.
    Basic {
        public_key: String,
        secret_key: Secret,
    },
    /// A bearer token obtained elsewhere.
    Bearer(Secret),
    /// OAuth2 client credentials: tokens with exactly these scopes are fetched
    /// from POST /oauth2/token (with Basic auth) and refreshed before expiry,
    /// or when the API answers 401 to one (see [`crate::hooks`]).
    OAuth {
        public_key: String,
        secret_key: Secret,
        scopes: Vec<String>,
    },
}

impl MoovCredentials {
    pub fn basic(public_key: impl Into<String>, secret_key: impl Into<Secret>) -> Self {
        Self::Basic {
            public_key: public_key.into(),
            secret_key: secret_key.into(),
        }
    }

    /// The `Authorization` value for Basic auth, if these credentials have a key pair.
    pub(crate) fn basic_header(&self) -> Option<String> {
        use base64::Engine as _;
        match self {
            Self::Basic {
                public_key,
                secret_key,
            }
            | Self::OAuth {
                public_key,
                secret_key,
                ..
            } => {
                let pair = format!("{public_key}:{}", secret_key.expose());
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ))
            }
            Self::Bearer(_) => None,
        }
    }
}

/// Scopes a client needs to read and write the files of `account_id`.
pub fn files_scopes(account_id: &str) -> [String; 2] {
    [
        format!("/accounts/{account_id}/files.read"),
        format!("/accounts/{account_id}/files.write"),
    ]
}

/// Scopes a client needs to read and write the images of `account_id`.
pub fn images_scopes(account_id: &str) -> [String; 2] {
    [
        format!("/accounts/{account_id}/images.read"),
        format!("/accounts/{account_id}/images.write"),
    ]
}

/// The OAuth token cache of a client: the token in use, and the scopes added with
/// `moov::Client::ensure_scopes` after the client was built.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    pub token: Option<CachedToken>,
    pub added_scopes: Vec<String>,
}

/// The largest `expires_in` read as seconds from now: ten years of 365 days.
///
/// No access token lives that long, and as a Unix time 315 360 000 is the end
/// of 1979, long before any token was issued: a larger value is read as the
/// Unix time of expiry.
pub const MAX_EXPIRES_IN_SECONDS: i64 = 10 * 365 * 24 * 60 * 60;

/// How long a token whose answer said `expires_in` has left to live at `now`.
///
/// - `1..=MAX_EXPIRES_IN_SECONDS`: seconds from now (OAuth 2.0);
/// - above [`MAX_EXPIRES_IN_SECONDS`]: the Unix time of expiry (Moov's spec);
///   a time already past gives zero;
/// - zero or negative: zero.
///
/// Zero means expired: the token is used for the request it was fetched for,
/// and the next request fetches a new one.
pub fn token_lifetime(expires_in: i64, now: SystemTime) -> Duration {
    let Ok(value) = u64::try_from(expires_in) else {
        return Duration::ZERO;
    };
    if expires_in <= MAX_EXPIRES_IN_SECONDS {
        return Duration::from_secs(value);
    }
    let expires_at = UNIX_EPOCH + Duration::from_secs(value);
    expires_at.duration_since(now).unwrap_or(Duration::ZERO)
}

/// An access token and when to stop using it.
#[derive(Clone, Debug)]
pub(crate) struct CachedToken {
    pub token: Secret,
    /// Refresh from this instant on (a margin before the real expiry).
    pub refresh_at: Instant,
}

impl CachedToken {
    /// A token just answered with `expires_in` (seconds or a Unix time, see
    /// [`token_lifetime`]). It is refreshed 30 s (or a tenth of its remaining
    /// life, if shorter) before it expires.
    pub fn new(token: Secret, expires_in: i64) -> Self {
        Self::answered_at(token, expires_in, SystemTime::now(), Instant::now())
    }

    /// [`CachedToken::new`] with the clocks read at the answer given.
    fn answered_at(token: Secret, expires_in: i64, now: SystemTime, at: Instant) -> Self {
        let life = token_lifetime(expires_in, now);
        let margin = Duration::from_secs(30).min(life / 10);
        Self {
            token,
            // An instant too far to represent cannot happen with the lifetimes
            // above; if it did, refreshing at once is the safe side.
            refresh_at: at.checked_add(life.saturating_sub(margin)).unwrap_or(at),
        }
    }

    pub fn is_fresh(&self) -> bool {
        self.is_fresh_at(Instant::now())
    }

    fn is_fresh_at(&self, at: Instant) -> bool {
        at < self.refresh_at
    }

    /// Whether `authorization` (a request's header value) carries this token.
    pub fn is_sent_in(&self, authorization: &[u8]) -> bool {
        authorization.strip_prefix(b"Bearer ") == Some(self.token.expose().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let creds = MoovCredentials::OAuth {
            public_key: "pk".into(),
            secret_key: Secret::new("canary-secret-123"),
            scopes: vec!["/accounts/00000000-0000-4000-8000-00000000000a/files.read".into()],
        };
        let shown = format!("{creds:?} {}", Secret::new("canary-secret-123"));
        assert!(!shown.contains("canary-secret-123"), "{shown}");
        assert!(shown.contains("***"));
    }

    #[test]
    fn basic_header_encodes_the_key_pair() {
        let creds = MoovCredentials::basic("public", "secret");
        // base64("public:secret")
        assert_eq!(
            creds.basic_header().as_deref(),
            Some("Basic cHVibGljOnNlY3JldA==")
        );
        assert_eq!(
            MoovCredentials::Bearer(Secret::new("t")).basic_header(),
            None
        );
    }

    /// The Unix time of Moov's spec example, and a `now` an hour before it.
    const MOOV_EXAMPLE: i64 = 1_736_964_352;

    fn at_unix(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn hour_before_example() -> SystemTime {
        at_unix(1_736_964_352 - 3600)
    }

    #[test]
    fn expires_in_up_to_ten_years_is_seconds_from_now() {
        let now = hour_before_example();
        assert_eq!(token_lifetime(3600, now), Duration::from_secs(3600));
        assert_eq!(token_lifetime(1, now), Duration::from_secs(1));
        assert_eq!(
            token_lifetime(MAX_EXPIRES_IN_SECONDS, now),
            Duration::from_secs(315_360_000)
        );
    }

    #[test]
    fn expires_in_above_ten_years_is_a_unix_time() {
        // Moov's spec example, an hour from `now`.
        let now = hour_before_example();
        assert_eq!(token_lifetime(MOOV_EXAMPLE, now), Duration::from_secs(3600));
        // Just above the threshold is a time too (long past, so expired).
        assert_eq!(
            token_lifetime(MAX_EXPIRES_IN_SECONDS + 1, now),
            Duration::ZERO
        );
        // The largest value the spec's int32 allows: early 2038.
        assert_eq!(
            token_lifetime(i64::from(i32::MAX), now),
            Duration::from_secs(2_147_483_647 - (1_736_964_352 - 3600))
        );
    }

    #[test]
    fn a_unix_time_in_the_past_means_expired() {
        let now = at_unix(1_736_964_352 + 1);
        assert_eq!(token_lifetime(MOOV_EXAMPLE, now), Duration::ZERO);
        assert_eq!(token_lifetime(MOOV_EXAMPLE + 1, now), Duration::ZERO);
        let at = Instant::now();
        let token = CachedToken::answered_at(Secret::new("t"), MOOV_EXAMPLE, now, at);
        assert!(
            !token.is_fresh_at(at),
            "an expired token is refreshed next time"
        );
    }

    #[test]
    fn zero_or_negative_expires_in_means_expired() {
        let now = hour_before_example();
        assert_eq!(token_lifetime(0, now), Duration::ZERO);
        assert_eq!(token_lifetime(-5, now), Duration::ZERO);
        assert_eq!(token_lifetime(i64::MIN, now), Duration::ZERO);
    }

    /// The refresh margin (30 s, or a tenth of the remaining life if shorter)
    /// applies to a Unix time just as to seconds.
    #[test]
    fn the_refresh_margin_applies_to_both_readings() {
        let now = hour_before_example();
        let at = Instant::now();
        for expires_in in [3600, MOOV_EXAMPLE] {
            let token = CachedToken::answered_at(Secret::new("t"), expires_in, now, at);
            assert_eq!(token.refresh_at, at + Duration::from_secs(3600 - 30));
            assert!(token.is_fresh_at(at + Duration::from_secs(3569)));
            assert!(!token.is_fresh_at(at + Duration::from_secs(3570)));
        }
        // 100 s to live: refreshed 10 s early.
        for expires_in in [100, 1_736_960_752 + 100] {
            let token = CachedToken::answered_at(Secret::new("t"), expires_in, now, at);
            assert_eq!(token.refresh_at, at + Duration::from_secs(90));
        }
    }

    #[test]
    fn a_cached_token_recognises_its_own_header() {
        let token = CachedToken::new(Secret::new("tok-1"), 3600);
        assert!(token.is_sent_in(b"Bearer tok-1"));
        assert!(!token.is_sent_in(b"Bearer tok-2"));
        assert!(!token.is_sent_in(b"tok-1"));
        assert!(!format!("{token:?}").contains("tok-1"));
    }
}
