//! Moov auth: HTTP Basic with the configured key pair, bearer tokens with scopes,
//! the `x-moov-version` check, and POST /oauth2/token.

use std::collections::HashSet;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::query::percent_decode;
use super::AppState;
use crate::config::random_hex;
use crate::error::{ApiError, AuthTokenValidationError};
use crate::store::{self, TokenRow};

/// What an operation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Perm {
    FilesRead,
    FilesWrite,
    ImagesRead,
    ImagesWrite,
}

impl Perm {
    fn scope(self, account_id: &str) -> String {
        let suffix = match self {
            Perm::FilesRead => "files.read",
            Perm::FilesWrite => "files.write",
            Perm::ImagesRead => "images.read",
            Perm::ImagesWrite => "images.write",
        };
        format!("/accounts/{account_id}/{suffix}")
    }
}

/// Validates `x-moov-version` (absent, or `vYYYY.QQ.BB` with QQ in 01/04/07/10).
/// A malformed version is answered 404, as Moov does.
pub fn check_version(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(v) = headers.get("x-moov-version") else {
        return Ok(());
    };
    let ok = v.to_str().ok().is_some_and(valid_version);
    if ok {
        Ok(())
    } else {
        Err(ApiError::Empty(StatusCode::NOT_FOUND))
    }
}

fn valid_version(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 11
        && b[0] == b'v'
        && b[1..5].iter().all(u8::is_ascii_digit)
        && b[5] == b'.'
        && matches!(&b[6..8], b"01" | b"04" | b"07" | b"10")
        && b[8] == b'.'
        && b[9..11].iter().all(u8::is_ascii_digit)
}

fn unauthorized() -> ApiError {
    ApiError::Empty(StatusCode::UNAUTHORIZED)
}

/// The HTTP Basic credentials of a request, if any.
fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

fn basic_ok(st: &AppState, headers: &HeaderMap) -> bool {
    basic(headers).is_some_and(|(u, p)| {
        u == st.inner.credentials.public_key && p == st.inner.credentials.secret_key
    })
}

async fn lookup_token(st: &AppState, access: &str) -> Result<Option<TokenRow>, ApiError> {
    if let Some(t) = st
        .inner
        .tokens
        .lock()
        .ok()
        .and_then(|m| m.get(access).cloned())
    {
        return Ok(Some(t));
    }
    let key = access.to_owned();
    let found = st.db(move |c| store::token_by_access(c, &key)).await?;
    if let (Some(t), Ok(mut m)) = (&found, st.inner.tokens.lock()) {
        m.insert(t.access_token.clone(), t.clone());
    }
    Ok(found)
}

/// Whether `id` can name an account. Moov identifies every account by a UUID in
/// its hyphenated form (such as `7f888113-d35a-4536-b9bc-c55076736ab6`, the
/// documents' example).
pub fn valid_account_id(id: &str) -> bool {
    id.len() == 36 && uuid::Uuid::try_parse(id).is_ok()
}

/// Checks version, auth and account of a Moov account operation, in that order.
///
/// A malformed version: 404. No or bad credentials: 401. An account ID that is not
/// a UUID: 404 without a body. A token without the scope, or for another account: 403.
///
/// The documents do not say what Moov answers to a malformed `accountID`; 404 with
/// no body is what the spec documents on every account operation (400 is not
/// documented on the reads), what a malformed version is answered, and what an
/// account that does not exist gets: such an ID names no account. Credentials are
/// checked first, so a request without them is still answered 401.
pub async fn guard(
    st: &AppState,
    headers: &HeaderMap,
    account_id: &str,
    perm: Perm,
) -> Result<(), ApiError> {
    check_version(headers)?;
    let scoped = if basic_ok(st, headers) {
        true
    } else {
        let Some(token) = bearer(headers) else {
            return Err(unauthorized());
        };
        let Some(row) = lookup_token(st, token).await? else {
            return Err(unauthorized());
        };
        if row.revoked || row.expires_at <= st.now() {
            return Err(unauthorized());
        }
        let wanted = perm.scope(account_id);
        row.scope.split_whitespace().any(|s| s == wanted)
    };
    if !valid_account_id(account_id) {
        return Err(ApiError::Empty(StatusCode::NOT_FOUND));
    }
    if scoped {
        Ok(())
    } else {
        Err(ApiError::Empty(StatusCode::FORBIDDEN))
    }
}

/// Body of POST /oauth2/token (JSON or form).
#[derive(Deserialize, Debug, Default)]
struct TokenRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
    refresh_token: Option<String>,
}

/// Answer of POST /oauth2/token.
#[derive(Serialize, Debug)]
struct AuthToken {
    token_type: &'static str,
    access_token: String,
    refresh_token: String,
    expires_in: i32,
    scope: String,
}

fn valid_scope_item(s: &str) -> bool {
    s.starts_with('/')
        && s.len() <= 512
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-{}:".contains(c))
}

fn token_validation(scope: Option<&str>, refresh: Option<&str>) -> ApiError {
    ApiError::TokenValidation(AuthTokenValidationError {
        scope: scope.map(str::to_owned),
        refresh_token: refresh.map(str::to_owned),
    })
}

/// POST /oauth2/token (createAccessToken).
pub async fn create_access_token(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    // Credentials first: a request without them is 401 whatever else is wrong
    // with it (a malformed version or body comes after).
    let basic = basic_ok(&st, &headers);
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("json"));
    let parsed: Result<TokenRequest, ApiError> = if body.iter().all(u8::is_ascii_whitespace) {
        Ok(TokenRequest::default())
    } else if is_json {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    } else {
        serde_urlencoded_parse(&body)
    };
    let body_creds = parsed.as_ref().is_ok_and(|req| {
        matches!(
            (&req.client_id, &req.client_secret),
            (Some(id), Some(secret)) if *id == st.inner.credentials.public_key
                && *secret == st.inner.credentials.secret_key
        )
    });
    if !basic && !body_creds {
        let mut resp = unauthorized().into_response();
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"moov\""),
        );
        return Ok(resp);
    }
    check_version(&headers)?;
    let req = parsed?;
    let now = st.now();
    let requested: Option<Vec<String>> = req
        .scope
        .as_deref()
        .map(|s| s.split_whitespace().map(str::to_owned).collect());
    if let Some(bad) = requested.iter().flatten().find(|s| !valid_scope_item(s)) {
        return Err(token_validation(
            Some(&format!("invalid scope: {bad}")),
            None,
        ));
    }
    let scope = match req.grant_type.as_deref() {
        Some("client_credentials") => match requested {
            Some(items) if !items.is_empty() => items.join(" "),
            _ => return Err(token_validation(Some("scope is required"), None)),
        },
        Some("refresh_token") => {
            let Some(refresh) = req.refresh_token.clone().filter(|r| !r.is_empty()) else {
                return Err(token_validation(None, Some("refresh_token is required")));
            };
            if refresh.len() > 4096 {
                return Err(token_validation(None, Some("refresh_token is too long")));
            }
            let old = st.db(move |c| store::token_by_refresh(c, &refresh)).await?;
            let Some(old) = old.filter(|t| !t.revoked && t.refresh_expires_at > now) else {
                return Err(token_validation(
                    None,
                    Some("refresh_token is invalid, expired or already used"),
                ));
            };
            let granted: HashSet<&str> = old.scope.split_whitespace().collect();
            let scope = match requested {
                Some(items) if !items.is_empty() => {
                    if let Some(extra) = items.iter().find(|s| !granted.contains(s.as_str())) {
                        return Err(token_validation(
                            Some(&format!(
                                "scope {extra} was not granted to this refresh token"
                            )),
                            None,
                        ));
                    }
                    items.join(" ")
                }
                _ => old.scope.clone(),
            };
            let access = old.access_token.clone();
            st.db(move |c| store::revoke_token(c, &access)).await?;
            if let Ok(mut m) = st.inner.tokens.lock() {
                m.remove(&old.access_token);
            }
            scope
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unsupported grant_type {other:?}: use client_credentials or refresh_token"
            )))
        }
        None => return Err(ApiError::bad_request("grant_type is required")),
    };
    let ttl = chrono::Duration::from_std(st.inner.token_ttl).unwrap_or(chrono::Duration::hours(1));
    let expires_at = now
        .checked_add_signed(ttl)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
    let refresh_expires_at = now
        .checked_add_signed(chrono::Duration::days(30))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
        .max(expires_at);
    let row = TokenRow {
        access_token: format!("sbx_at_{}", random_hex(32)),
        refresh_token: format!("sbx_rt_{}", random_hex(32)),
        scope: scope.clone(),
        expires_at,
        refresh_expires_at,
        revoked: false,
    };
    let insert = row.clone();
    st.db(move |c| store::insert_token(c, &insert)).await?;
    if let Ok(mut m) = st.inner.tokens.lock() {
        m.insert(row.access_token.clone(), row.clone());
    }
    let body = AuthToken {
        token_type: "Bearer",
        access_token: row.access_token,
        refresh_token: row.refresh_token,
        expires_in: i32::try_from(st.inner.token_ttl.as_secs()).unwrap_or(i32::MAX),
        scope,
    };
    Ok((StatusCode::OK, Json(body)).into_response())
}

/// Parses an `application/x-www-form-urlencoded` body.
fn serde_urlencoded_parse(body: &[u8]) -> Result<TokenRequest, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("form body is not valid UTF-8"))?;
    let mut req = TokenRequest::default();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(k).ok_or_else(|| ApiError::bad_request("malformed form body"))?;
        let v = percent_decode(v).ok_or_else(|| ApiError::bad_request("malformed form body"))?;
        let slot = match k.as_str() {
            "grant_type" => &mut req.grant_type,
            "client_id" => &mut req.client_id,
            "client_secret" => &mut req.client_secret,
            "scope" => &mut req.scope,
            "refresh_token" => &mut req.refresh_token,
            _ => continue,
        };
        *slot = Some(v);
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        for (v, ok) in [
            ("v2024.01.00", true),
            ("v2025.10.03", true),
            ("v2024.02.00", false),
            ("2024.01.00", false),
            ("v2024.1.00", false),
            ("latest", false),
            ("v2024.01.000", false),
        ] {
            assert_eq!(valid_version(v), ok, "{v}");
        }
    }

    #[test]
    fn account_ids() {
        for (id, ok) in [
            ("7f888113-d35a-4536-b9bc-c55076736ab6", true),
            ("7F888113-D35A-4536-B9BC-C55076736AB6", true),
            ("00000000-0000-0000-0000-000000000001", true),
            ("acme", false),
            ("", false),
            ("7f888113d35a4536b9bcc55076736ab6", false),
            ("{7f888113-d35a-4536-b9bc-c55076736ab6}", false),
            ("7f888113-d35a-4536-b9bc-c55076736ab", false),
            ("7f888113-d35a-4536-b9bc-c55076736abg", false),
            ("7f888113d-35a-4536-b9bc-c55076736ab6", false),
        ] {
            assert_eq!(valid_account_id(id), ok, "{id}");
        }
    }

    #[test]
    fn form_decoding() {
        let r = serde_urlencoded_parse(
            b"grant_type=client_credentials&scope=%2Faccounts%2F7f888113-d35a-4536-b9bc-c55076736ab6%2Ffiles.read+%2Fx",
        )
        .unwrap_or_default();
        assert_eq!(r.grant_type.as_deref(), Some("client_credentials"));
        assert_eq!(
            r.scope.as_deref(),
            Some("/accounts/7f888113-d35a-4536-b9bc-c55076736ab6/files.read /x")
        );
    }
}
