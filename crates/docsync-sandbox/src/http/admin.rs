//! `/_sandbox/*`: fault settings, the request log, the clock. Unauthenticated (a
//! local test server); never subject to injected faults.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::AppState;
use crate::faults::FaultConfig;

pub async fn get_faults(State(st): State<AppState>) -> Json<FaultConfig> {
    Json(st.faults())
}

pub async fn set_faults(State(st): State<AppState>, body: axum::body::Bytes) -> Response {
    let cfg: FaultConfig = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({ "error": format!("invalid fault settings: {e}") })),
            )
                .into_response()
        }
    };
    match st.set_faults(cfg.clone()) {
        Ok(()) => Json(cfg).into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": e.to_string() })),
        )
            .into_response(),
    }
}

pub async fn requests(State(st): State<AppState>) -> Response {
    Json(st.request_log()).into_response()
}

pub async fn clear_requests(State(st): State<AppState>) -> StatusCode {
    st.clear_request_log();
    StatusCode::NO_CONTENT
}

pub async fn clock(State(st): State<AppState>) -> Response {
    Json(serde_json::json!({ "now": st.now() })).into_response()
}

#[derive(Deserialize, Debug)]
pub struct Advance {
    advance_secs: u64,
}

pub async fn advance_clock(State(st): State<AppState>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<Advance>(&body) {
        Ok(a) => {
            st.clock()
                .advance(std::time::Duration::from_secs(a.advance_secs));
            Json(serde_json::json!({ "now": st.now() })).into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": format!("expected {{\"advance_secs\": N}}: {e}") })),
        )
            .into_response(),
    }
}

pub async fn sweep(State(st): State<AppState>) -> Response {
    match st.sweep().await {
        Ok(n) => Json(serde_json::json!({ "removed_blobs": n })).into_response(),
        Err(e) => e.into_response(),
    }
}
