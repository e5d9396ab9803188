//! Which API a state database's rows were synced against: the embedded sandbox
//! or the base URLs of the real APIs. Recorded by the store, compared by the
//! engine at start, shown by `status` and the status page. Never credentials.

use std::fmt;

/// The API the folders are synced with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiIdentity {
    /// The embedded sandbox: a local stand-in whose decisions are not real.
    /// Recorded as such, never by its (random) port.
    Sandbox,
    /// The real APIs, by normalised base URL (see [`normalise_base_url`]); `None`
    /// for an API no folder uses.
    Remote {
        /// The Moov API (files, images).
        moov: Option<String>,
        /// The attachments API.
        attachments: Option<String>,
    },
}

impl ApiIdentity {
    /// Whether this is the embedded sandbox.
    pub fn is_sandbox(&self) -> bool {
        matches!(self, ApiIdentity::Sandbox)
    }

    /// What to record when this (the configured API) replaces `recorded`: `Some`
    /// when both name the same server for every API both use (an API only one of
    /// them uses is taken from the one that does), `None` when they differ, so
    /// the rows of `recorded` would be wrong for this one.
    pub fn merged_with(&self, recorded: &ApiIdentity) -> Option<ApiIdentity> {
        match (self, recorded) {
            (ApiIdentity::Sandbox, ApiIdentity::Sandbox) => Some(ApiIdentity::Sandbox),
            (
                ApiIdentity::Remote { moov, attachments },
                ApiIdentity::Remote {
                    moov: was_moov,
                    attachments: was_attachments,
                },
            ) => {
                let same = |now: &Option<String>, was: &Option<String>| match (now, was) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                };
                (same(moov, was_moov) && same(attachments, was_attachments)).then(|| {
                    ApiIdentity::Remote {
                        moov: moov.clone().or_else(|| was_moov.clone()),
                        attachments: attachments.clone().or_else(|| was_attachments.clone()),
                    }
                })
            }
            _ => None,
        }
    }
}

impl fmt::Display for ApiIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiIdentity::Sandbox => f.write_str("embedded sandbox (not the real Moov API)"),
            ApiIdentity::Remote { moov, attachments } => match (moov, attachments) {
                (Some(m), Some(a)) if m == a => f.write_str(m),
                (Some(m), Some(a)) => write!(f, "{m} (attachments: {a})"),
                (Some(m), None) => f.write_str(m),
                (None, Some(a)) => write!(f, "attachments: {a}"),
                (None, None) => f.write_str("no API"),
            },
        }
    }
}

/// A base URL as it is recorded and compared: scheme and host in lower case,
/// the scheme's default port dropped, no user name or password, query or
/// fragment, no trailing slash. Text that is not a URL is kept as it is
/// (trimmed).
pub fn normalise_base_url(text: &str) -> String {
    let text = text.trim();
    let Ok(mut url) = url::Url::parse(text) else {
        return text.trim_end_matches('/').to_owned();
    };
    // never record credentials, even ones written into the URL
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    url.as_str().trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(moov: Option<&str>, attachments: Option<&str>) -> ApiIdentity {
        ApiIdentity::Remote {
            moov: moov.map(str::to_owned),
            attachments: attachments.map(str::to_owned),
        }
    }

    #[test]
    fn base_urls_are_normalised_without_credentials() {
        for (text, want) in [
            ("https://api.moov.io", "https://api.moov.io"),
            ("https://API.Moov.io/", "https://api.moov.io"),
            ("https://api.moov.io:443/", "https://api.moov.io"),
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
            (
                "https://user:pw@api.moov.io/v1/?x=1#y",
                "https://api.moov.io/v1",
            ),
            ("  https://api.moov.io  ", "https://api.moov.io"),
            ("not a url/", "not a url"),
        ] {
            assert_eq!(normalise_base_url(text), want, "{text}");
        }
    }

    #[test]
    fn identities_merge_only_when_every_shared_api_is_the_same() {
        let a = "https://a.example";
        let b = "https://b.example";
        let cases = [
            (
                ApiIdentity::Sandbox,
                ApiIdentity::Sandbox,
                Some(ApiIdentity::Sandbox),
            ),
            (ApiIdentity::Sandbox, remote(Some(a), None), None),
            (remote(Some(a), None), ApiIdentity::Sandbox, None),
            (
                remote(Some(a), None),
                remote(Some(a), None),
                Some(remote(Some(a), None)),
            ),
            (remote(Some(a), None), remote(Some(b), None), None),
            // an attachments folder added: the Moov API is the same
            (
                remote(Some(a), Some(b)),
                remote(Some(a), None),
                Some(remote(Some(a), Some(b))),
            ),
            // the attachments folder removed: what it used is remembered
            (
                remote(Some(a), None),
                remote(Some(a), Some(b)),
                Some(remote(Some(a), Some(b))),
            ),
            (remote(Some(a), Some(a)), remote(Some(a), Some(b)), None),
        ];
        for (now, recorded, want) in cases {
            assert_eq!(
                now.merged_with(&recorded),
                want,
                "{now:?} over {recorded:?}"
            );
        }
    }

    #[test]
    fn the_sandbox_says_it_is_not_the_real_api() {
        assert_eq!(
            ApiIdentity::Sandbox.to_string(),
            "embedded sandbox (not the real Moov API)"
        );
        assert_eq!(remote(Some("https://a"), None).to_string(), "https://a");
        assert_eq!(
            remote(Some("https://a"), Some("https://b")).to_string(),
            "https://a (attachments: https://b)"
        );
    }
}
