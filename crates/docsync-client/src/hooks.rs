//! What every request gets, through progenitor's client hooks.
//!
//! `pre` adds authentication and the API version; `exec` sends the request and
//! tags the response with the operation it answers, so that [`ApiError`] can
//! decode a documented error body from the right schema.
//!
//! # A 401 to an OAuth token
//!
//! A token the client believes fresh may still be refused (revoked, or its
//! expiry misread). When the Moov API answers 401 to a request that carried a
//! cached OAuth token, `exec` drops that token, fetches a new one and sends the
//! request once more; the answer to that second attempt is the caller's, 401
//! or not. The token request itself (it carries the key pair, not a token) and
//! requests with Basic or caller-given Bearer credentials are never resent.
//!
//! progenitor's hooks allow this only in `exec`: it owns the built
//! `reqwest::Request`, and `post` only sees the result. A request can be sent
//! again only if it can be copied before the first attempt
//! (`reqwest::Request::try_clone`), which fails for a streamed body: every
//! multipart upload (reqwest streams multipart forms, even from bytes in
//! memory) and a file streamed from disk. Such a request is not resent: its
//! 401 is returned, but the token is still dropped, so the next request (the
//! caller's own retry, which rebuilds the body) gets a new one. If the new
//! token cannot be fetched, the token endpoint's failure is returned as it would
//! be from `pre` (a 503 stays retryable), or the 401 when there is no response
//! to pass on.
//!
//! [`ApiError`]: crate::ApiError

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use progenitor_client::{ClientHooks, ClientInfo, Error, OperationInfo, ResponseValue};
use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION};
use reqwest::StatusCode;
use tokio::sync::Mutex;

use crate::auth::{CachedToken, MoovCredentials, Secret, TokenCache};
use crate::operation::{Api, OperationTag, SIGNED_UPLOAD};
use crate::retry::RetryPolicy;
use crate::{attachments, moov};

/// State behind a [`moov::Client`]: credentials, version, retries, token cache.
#[derive(Clone, Debug)]
pub struct MoovContext {
    pub(crate) credentials: MoovCredentials,
    pub(crate) version: String,
    pub(crate) retry: RetryPolicy,
    pub(crate) token: Arc<Mutex<TokenCache>>,
    pub(crate) token_source: Option<TokenSource>,
}

type TokenFuture = Pin<Box<dyn Future<Output = Result<moov::types::AuthToken, Error<()>>> + Send>>;

/// Fetches access tokens through createAccessToken on a Basic-auth client.
///
/// A type-erased function, built where the client is built: calling the
/// generated method from inside `pre` directly would make `pre`'s future
/// contain itself, and the compiler cannot prove such a future `Send`.
#[derive(Clone)]
pub(crate) struct TokenSource(
    pub(crate) Arc<dyn Fn(moov::types::AuthTokenRequest) -> TokenFuture + Send + Sync>,
);

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSource")
    }
}

impl TokenSource {
    /// Tokens fetched by `basic_client` (a client with Basic credentials).
    pub(crate) fn new(basic_client: moov::Client) -> Self {
        let client = Arc::new(basic_client);
        Self(Arc::new(move |body| {
            let client = Arc::clone(&client);
            Box::pin(async move {
                client
                    .create_access_token(None, &body)
                    .await
                    .map(ResponseValue::into_inner)
            })
        }))
    }
}

/// State behind an [`attachments::Client`]: the API key and retries.
#[derive(Clone, Debug)]
pub struct AttachmentsContext {
    pub(crate) api_key: Secret,
    pub(crate) retry: RetryPolicy,
}

const X_MOOV_VERSION: HeaderName = HeaderName::from_static("x-moov-version");
const API_KEY: HeaderName = HeaderName::from_static("api-key");
const X_REQUEST_ID: &str = "x-request-id";

fn sensitive(value: &str) -> Result<HeaderValue, String> {
    let mut value = HeaderValue::from_str(value)
        .map_err(|_| "credentials contain characters not allowed in a header".to_string())?;
    value.set_sensitive(true);
    Ok(value)
}

impl moov::Client {
    /// The retry policy this client was built with.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.inner().retry
    }

    /// With OAuth credentials, make the tokens of this client (and its clones) carry
    /// `scopes` too: for accounts found at run time, e.g. the account folders of
    /// the `<accountID>/<filePurpose>/` layout. A scope not held yet drops the
    /// cached token, so the next request fetches one that has it. No effect with
    /// other credentials.
    pub async fn ensure_scopes(&self, scopes: &[String]) {
        let MoovCredentials::OAuth { scopes: built, .. } = &self.inner().credentials else {
            return;
        };
        let mut cache = self.inner().token.lock().await;
        let mut added = false;
        for scope in scopes {
            if !built.contains(scope) && !cache.added_scopes.contains(scope) {
                cache.added_scopes.push(scope.clone());
                added = true;
            }
        }
        if added {
            cache.token = None;
        }
    }

    /// A bearer token for the configured (and added) scopes, fetched or refreshed
    /// as needed.
    async fn access_token<E>(
        &self,
        public_key: &str,
        scopes: &[String],
    ) -> Result<Secret, Error<E>> {
        let mut cache = self.inner().token.lock().await;
        if let Some(token) = cache.token.as_ref().filter(|t| t.is_fresh()) {
            return Ok(token.token.clone());
        }
        let scope = scopes
            .iter()
            .chain(&cache.added_scopes)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ");
        let body = moov::types::AuthTokenRequest {
            grant_type: moov::types::GrantType::ClientCredentials,
            client_id: Some(public_key.to_string()),
            client_secret: None,
            scope: Some(scope.clone()),
            refresh_token: None,
        };
        let source =
            self.inner().token_source.as_ref().ok_or_else(|| {
                Error::Custom("no token source for OAuth credentials".to_string())
            })?;
        let token = (source.0)(body).await.map_err(token_error)?;
        let fresh = CachedToken::new(Secret::new(token.access_token), i64::from(token.expires_in));
        let secret = fresh.token.clone();
        cache.token = Some(fresh);
        Ok(secret)
    }

    /// With OAuth credentials, whether `operation` is sent with a cached token
    /// (everything but the token request and the public image).
    fn uses_cached_token(&self, operation: &str) -> bool {
        matches!(self.inner().credentials, MoovCredentials::OAuth { .. })
            && operation != "create_access_token"
            && operation != "get_public_image"
    }

    /// Forget the cached token if it is the one in `authorization` (the header
    /// a refused request carried); a token another request has fetched since
    /// is kept.
    async fn drop_token(&self, authorization: Option<&HeaderValue>) {
        let Some(sent) = authorization else {
            return;
        };
        let mut cache = self.inner().token.lock().await;
        if cache
            .token
            .as_ref()
            .is_some_and(|t| t.is_sent_in(sent.as_bytes()))
        {
            cache.token = None;
        }
    }

    /// Send `request`, which carries a cached OAuth token; on 401, drop the
    /// token and send a copy once more with a new one (see the module docs).
    async fn exec_with_token(
        &self,
        request: reqwest::Request,
        operation: &'static str,
    ) -> reqwest::Result<reqwest::Response> {
        let replay = request.try_clone();
        let sent = request.headers().get(AUTHORIZATION).cloned();
        let refused = execute(self.client(), request, Api::Moov, operation).await?;
        if refused.status() != StatusCode::UNAUTHORIZED {
            return Ok(refused);
        }
        self.drop_token(sent.as_ref()).await;
        let Some(mut replay) = replay else {
            tracing::debug!(
                operation,
                "token refused (401) and dropped; the request has a streamed body and is not resent"
            );
            return Ok(refused);
        };
        let MoovCredentials::OAuth {
            public_key, scopes, ..
        } = &self.inner().credentials
        else {
            return Ok(refused);
        };
        let token = match self.access_token::<()>(public_key, scopes).await {
            Ok(token) => token,
            Err(Error::UnexpectedResponse(failed)) if !failed.status().is_success() => {
                return Ok(failed)
            }
            Err(Error::CommunicationError(e)) => return Err(e),
            Err(_) => {
                tracing::debug!(
                    operation,
                    "token refused (401); no new token could be fetched"
                );
                return Ok(refused);
            }
        };
        let Ok(header) = sensitive(&format!("Bearer {}", token.expose())) else {
            return Ok(refused);
        };
        replay.headers_mut().insert(AUTHORIZATION, header);
        tracing::debug!(
            operation,
            "token refused (401); resending once with a new token"
        );
        execute(self.client(), replay, Api::Moov, operation).await
    }
}

/// A failed token request, as the error of the call that needed the token: the
/// token endpoint's own response (tagged `create_access_token`, so a 503 is
/// retried like any 503 and a 401 says to check the credentials) or transport
/// error is passed on whole.
fn token_error<E>(e: Error<()>) -> Error<E> {
    match e {
        Error::UnexpectedResponse(response) => Error::UnexpectedResponse(response),
        Error::CommunicationError(e) => Error::CommunicationError(e),
        Error::ResponseBodyError(e) => Error::ResponseBodyError(e),
        Error::InvalidUpgrade(e) => Error::InvalidUpgrade(e),
        Error::InvalidResponsePayload(bytes, e) => Error::InvalidResponsePayload(bytes, e),
        Error::InvalidRequest(s) => Error::InvalidRequest(s),
        Error::Custom(s) => Error::Custom(s),
        Error::ErrorResponse(value) => Error::Custom(format!(
            "fetching an access token failed with status {}",
            value.status()
        )),
    }
}

impl ClientHooks<MoovContext> for moov::Client {
    async fn pre<E>(
        &self,
        request: &mut reqwest::Request,
        info: &OperationInfo,
    ) -> Result<(), Error<E>> {
        strip_spec_version(request);
        // The public image endpoint takes neither credentials nor a version.
        if info.operation_id == "get_public_image" {
            return Ok(());
        }
        let ctx = self.inner();
        if !request.headers().contains_key(&X_MOOV_VERSION) {
            let version = HeaderValue::from_str(&ctx.version).map_err(|_| {
                Error::InvalidRequest(format!("invalid X-Moov-Version `{}`", ctx.version))
            })?;
            request.headers_mut().insert(X_MOOV_VERSION, version);
        }
        let authorization = match &ctx.credentials {
            MoovCredentials::Bearer(token) => format!("Bearer {}", token.expose()),
            creds @ MoovCredentials::Basic { .. } => creds.basic_header().unwrap_or_default(),
            creds @ MoovCredentials::OAuth { .. } if info.operation_id == "create_access_token" => {
                creds.basic_header().unwrap_or_default()
            }
            MoovCredentials::OAuth {
                public_key, scopes, ..
            } => {
                let token = self.access_token(public_key, scopes).await?;
                format!("Bearer {}", token.expose())
            }
        };
        request.headers_mut().insert(
            AUTHORIZATION,
            sensitive(&authorization).map_err(Error::InvalidRequest)?,
        );
        Ok(())
    }

    async fn exec(
        &self,
        request: reqwest::Request,
        info: &OperationInfo,
    ) -> reqwest::Result<reqwest::Response> {
        if self.uses_cached_token(info.operation_id) {
            self.exec_with_token(request, info.operation_id).await
        } else {
            execute(self.client(), request, Api::Moov, info.operation_id).await
        }
    }
}

impl attachments::Client {
    /// The retry policy this client was built with.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.inner().retry
    }

    /// PUT a file's bytes to the `file_url` that getSignedUrl returned.
    ///
    /// Real deployments hand out URLs on another host (object storage), so
    /// this sends to the URL exactly as given, through the same hooks as the
    /// generated `upload_to_signed_url` (which only fits URLs on the API's own
    /// host). No API key is sent: the URL is the credential.
    pub async fn upload_to_file_url(
        &self,
        file_url: &str,
        body: crate::FilePart,
    ) -> Result<progenitor_client::ResponseValue<()>, Error<()>> {
        let length = body.len();
        let mut builder = self
            .client()
            .put(file_url)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream");
        if let Some(length) = length {
            builder = builder.header(reqwest::header::CONTENT_LENGTH, length);
        }
        let mut request = builder
            .body(body.into_body())
            .build()
            .map_err(reqwest::Error::without_url)?;
        let info = OperationInfo {
            operation_id: SIGNED_UPLOAD,
        };
        self.pre(&mut request, &info).await?;
        let result = self.exec(request, &info).await;
        self.post(&result, &info).await?;
        let response = result?;
        if response.status().is_success() {
            Ok(progenitor_client::ResponseValue::empty(response))
        } else {
            Err(Error::UnexpectedResponse(response))
        }
    }
}

impl ClientHooks<AttachmentsContext> for attachments::Client {
    async fn pre<E>(
        &self,
        request: &mut reqwest::Request,
        info: &OperationInfo,
    ) -> Result<(), Error<E>> {
        strip_spec_version(request);
        // The signed URL is its own credential; never leak the key to it.
        if info.operation_id == SIGNED_UPLOAD {
            return Ok(());
        }
        let key = sensitive(self.inner().api_key.expose()).map_err(Error::InvalidRequest)?;
        request.headers_mut().insert(API_KEY, key);
        Ok(())
    }

    async fn exec(
        &self,
        request: reqwest::Request,
        info: &OperationInfo,
    ) -> reqwest::Result<reqwest::Response> {
        execute(self.client(), request, Api::Attachments, info.operation_id).await
    }
}

/// progenitor adds `api-version: <info.version of the spec>` to every request.
/// Neither API defines that header (Moov's version travels in X-Moov-Version,
/// and a signed URL is someone else's storage), so it is not sent.
fn strip_spec_version(request: &mut reqwest::Request) {
    request.headers_mut().remove("api-version");
}

async fn execute(
    client: &reqwest::Client,
    request: reqwest::Request,
    api: Api,
    operation: &'static str,
) -> reqwest::Result<reqwest::Response> {
    let method = request.method().clone();
    // A signed upload URL is a credential (a token in its path, or a signature
    // in its query): neither logged nor kept in an error.
    let signed_url = operation == SIGNED_UPLOAD;
    let path = if signed_url {
        "<signed upload URL>".to_string()
    } else {
        request.url().path().to_string()
    };
    let mut response =
        client
            .execute(request)
            .await
            .map_err(|e| if signed_url { e.without_url() } else { e })?;
    let request_id = response
        .headers()
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::debug!(
        operation,
        %method,
        path,
        status = response.status().as_u16(),
        request_id,
        "api response"
    );
    response
        .extensions_mut()
        .insert(OperationTag { api, operation });
    Ok(response)
}
