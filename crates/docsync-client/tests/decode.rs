//! Decoding of every documented response status of every operation.
//!
//! The statuses come from the specs (so a new one is covered as soon as it is
//! documented); the loopback server answers each with a body valid for that
//! status's schema (or none), and the client must return the right thing:
//! the decoded value for the success status, otherwise the `ApiError` variant
//! for the status with the documented body decoded and the server's
//! `x-request-id`. One snapshot per operation records the decoded results.

// Helpers outside #[test] fns unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, SystemTime};

use common::{
    all_operations, error_body, file_details, image_metadata, success_reply, Clients, Reply,
    Server, Spec, ACCOUNT_ID, FILE_UUID, USER_ID,
};
use docsync_client::{attachments, moov, ApiError, ErrorBody};
use serde_json::json;

/// The reply with its `x-request-id` set to `id` (replacing any other).
fn with_request_id(mut reply: Reply, id: &str) -> Reply {
    reply
        .headers
        .retain(|(name, _)| !name.eq_ignore_ascii_case("x-request-id"));
    reply.header("x-request-id", id)
}

/// The variant a status must map to.
fn expected_variant(status: u16) -> &'static str {
    match status {
        304 => "NotModified",
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        422 => "Validation",
        429 => "RateLimited",
        500 | 502 | 503 | 504 => "Server",
        other => panic!("no expectation for status {other}: extend this test"),
    }
}

fn variant(error: &ApiError) -> &'static str {
    match error {
        ApiError::BadRequest { .. } => "BadRequest",
        ApiError::Unauthorized { .. } => "Unauthorized",
        ApiError::Forbidden { .. } => "Forbidden",
        ApiError::NotFound { .. } => "NotFound",
        ApiError::Conflict { .. } => "Conflict",
        ApiError::Validation { .. } => "Validation",
        ApiError::RateLimited { .. } => "RateLimited",
        ApiError::Server { .. } => "Server",
        ApiError::NotModified { .. } => "NotModified",
        ApiError::Status { .. } => "Status",
        ApiError::Transport(_) => "Transport",
        ApiError::InvalidResponse { .. } => "InvalidResponse",
        ApiError::InvalidRequest(_) => "InvalidRequest",
    }
}

/// The answer to `status` of `operation`: the documented body for it.
fn reply_for(operation: &str, status: u16, schema: Option<&str>) -> Reply {
    let reply = if (200..300).contains(&status) {
        let reply = success_reply(operation);
        assert_eq!(reply.status, status, "{operation}: success status");
        reply
    } else if status == 304 {
        Reply::empty(304).header("etag", "\"etag-1\"")
    } else {
        let reply = match schema {
            Some(schema) => Reply::json(status, &error_body(schema)),
            None => Reply::empty(status),
        };
        if status == 429 {
            reply.header("retry-after", "7")
        } else {
            reply
        }
    };
    with_request_id(reply, &format!("rid-{operation}-{status}"))
}

#[tokio::test]
async fn every_documented_status_of_every_operation() {
    let operations = all_operations();
    assert!(operations.len() >= 14);
    for (spec, op) in operations {
        let mut lines = Vec::new();
        for (status, schema) in &op.responses {
            let status = *status;
            let what = format!("{} {status}", op.id);
            let request_id = format!("rid-{}-{status}", op.id);
            let server = Server::fixed(reply_for(&op.id, status, schema.as_deref())).await;
            let clients = Clients::new(&server);
            let result = clients.call(&op.id).await;
            assert_eq!(server.requests().len(), 1, "{what}: no retries here");
            match &result {
                Ok(_) => assert!((200..300).contains(&status), "{what}: {result:?}"),
                Err(error) => {
                    assert!(!(200..300).contains(&status), "{what}: {error:?}");
                    assert_eq!(
                        variant(error),
                        expected_variant(status),
                        "{what}: {error:?}"
                    );
                    assert_eq!(error.status(), Some(status), "{what}");
                    assert_eq!(error.request_id(), Some(request_id.as_str()), "{what}");
                    check_body(spec, &what, error, schema.as_deref());
                    if status == 429 {
                        assert_eq!(error.retry_after(), Some(Duration::from_secs(7)), "{what}");
                        assert!(error.is_retryable(), "{what}");
                    }
                }
            }
            let shown = match result {
                Ok(value) => format!("Ok({value})"),
                Err(error) => format!("Err({error:#?})\n// {error}"),
            };
            lines.push(format!("== {status}\n{shown}"));
        }
        insta::assert_snapshot!(op.id.clone(), lines.join("\n\n"));
    }
}

/// A documented body is decoded from its schema; a status without one has
/// `ErrorBody::None` (only 304 carries no body in `ApiError`).
fn check_body(spec: Spec, what: &str, error: &ApiError, schema: Option<&str>) {
    let Some(body) = error.body() else {
        assert!(
            matches!(error, ApiError::NotModified { .. }),
            "{what}: {error:?}"
        );
        return;
    };
    match (schema, body) {
        (None, ErrorBody::None) => {}
        (Some(_), ErrorBody::Moov(_)) if spec == Spec::Moov => {}
        (Some(_), ErrorBody::Attachments(_)) if spec == Spec::Attachments => {}
        _ => panic!("{what}: schema {schema:?} but body {body:?}"),
    }
    if let Some(schema) = schema {
        assert!(
            body.message().is_some(),
            "{what}: {schema} without a message"
        );
    }
}

#[tokio::test]
async fn conflict_and_validation_bodies_keep_their_fields() {
    let server = Server::script(vec![
        with_request_id(Reply::json(409, &error_body("GenericError")), "rid-409"),
        with_request_id(
            Reply::json(422, &error_body("FileValidationError")),
            "rid-422",
        ),
    ])
    .await;
    let clients = Clients::new(&server);
    let conflict = clients.call("uploadFile").await.unwrap_err();
    let ApiError::Conflict { body, request_id } = &conflict else {
        panic!("{conflict:?}")
    };
    assert_eq!(body.message().as_deref(), Some("duplicate file"));
    assert_eq!(request_id.as_deref(), Some("rid-409"));
    assert!(!conflict.is_retryable());

    let validation = clients.call("uploadFile").await.unwrap_err();
    let ApiError::Validation {
        body: ErrorBody::Moov(moov::errors::ErrorBody::FileValidationError(fields)),
        request_id,
    } = &validation
    else {
        panic!("{validation:?}")
    };
    // `FileName` (capital F) on the wire.
    assert_eq!(
        fields.file_name.as_deref(),
        Some("must be at most 64 characters")
    );
    assert_eq!(fields.file_purpose.as_deref(), Some("unknown purpose"));
    assert_eq!(fields.error.as_deref(), Some("validation failed"));
    assert_eq!(request_id.as_deref(), Some("rid-422"));
    assert!(!validation.is_retryable());
}

#[tokio::test]
async fn retry_after_as_an_http_date() {
    let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
    let rate_limited = Reply::json(429, &error_body("RateLimitError"))
        .header("retry-after", &at)
        .header("x-request-id", "rid-429");
    let server = Server::fixed(rate_limited).await;
    let clients = Clients::new(&server);
    for operation in ["listFiles", "getFileStatus"] {
        let error = clients.call(operation).await.unwrap_err();
        assert_eq!(variant(&error), "RateLimited", "{operation}: {error:?}");
        let after = error.retry_after().unwrap();
        // The date has a one-second resolution and a little time has passed.
        assert!(
            after > Duration::from_secs(100) && after <= Duration::from_secs(120),
            "{operation}: {after:?}"
        );
        assert_eq!(error.request_id(), Some("rid-429"));
    }
}

#[tokio::test]
async fn unknown_enum_values_decode_to_unknown() {
    let unknown = file_details("archived", "tax_document");
    let server = Server::script(vec![
        Reply::json(
            200,
            &json!([unknown, file_details("pending", "merchant_underwriting")]),
        ),
        Reply::json(200, &unknown),
        Reply::json(200, &json!({"file_id": FILE_UUID, "status": "quarantined"})),
    ])
    .await;
    let clients = Clients::new(&server);
    let list = clients
        .moov
        .list_files(ACCOUNT_ID, None)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.len(), 2);
    assert_eq!(
        list[0].file_status,
        moov::types::FileStatus::Unknown("archived".into())
    );
    assert_eq!(
        list[0].file_purpose,
        moov::types::FilePurpose::Unknown("tax_document".into())
    );
    assert_eq!(list[1].file_status, moov::types::FileStatus::Pending);
    assert_eq!(
        list[1].file_purpose,
        moov::types::FilePurpose::MerchantUnderwriting
    );

    let one = clients
        .moov
        .get_file_details(ACCOUNT_ID, "file-1", None)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.file_status.as_str(), "archived");
    assert_eq!(
        one.file_purpose,
        moov::types::FilePurpose::Unknown("tax_document".into())
    );

    let id = FILE_UUID.parse().unwrap();
    let user = USER_ID.parse().unwrap();
    let status = clients
        .attachments
        .get_file_status(&id, &user)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.status,
        attachments::types::ProcessingState::Unknown("quarantined".into())
    );
}

#[tokio::test]
async fn a_success_without_a_required_field_is_an_invalid_response() {
    let mut details = file_details("approved", "identity_verification");
    details.as_object_mut().unwrap().remove("fileID");
    let mut image = image_metadata();
    image.as_object_mut().unwrap().remove("link");
    let server = Server::script(vec![
        Reply::json(200, &details),
        Reply::json(200, &json!([image])),
        Reply::raw(200, "application/json", "not json"),
    ])
    .await;
    let clients = Clients::new(&server);
    for (operation, field) in [
        ("getFileDetails", "fileID"),
        ("listImageMetadata", "link"),
        ("getFileDetails", "expected ident"),
    ] {
        let error = clients.call(operation).await.unwrap_err();
        let ApiError::InvalidResponse { detail } = &error else {
            panic!("{operation}: {error:?}")
        };
        assert!(detail.contains(field), "{operation}: {detail}");
        assert!(!error.is_retryable());
    }
}

#[tokio::test]
async fn malformed_error_bodies_keep_the_variant_and_the_text() {
    let html = "<html><body><h1>502 Bad Gateway</h1></body></html>";
    let server = Server::script(vec![
        // Truncated JSON for a documented GenericError.
        Reply::raw(409, "application/json", r#"{"error":"#).header("x-request-id", "rid-1"),
        // Valid JSON of the wrong shape for a FileValidationError.
        Reply::raw(422, "application/json", r#"{"FileName": 5}"#).header("x-request-id", "rid-2"),
        // A proxy's HTML page, on a status the operation does not document.
        Reply::raw(502, "text/html", html).header("x-request-id", "rid-3"),
        // ... and on one it documents without a body.
        Reply::raw(502, "text/html", html).header("x-request-id", "rid-4"),
        // An attachments error that is not an AttachmentError.
        Reply::raw(503, "text/plain", "upstream down").header("x-request-id", "rid-5"),
    ])
    .await;
    let clients = Clients::new(&server);
    let mut shown = Vec::new();
    for (operation, variant_name, text) in [
        ("uploadFile", "Conflict", r#"{"error":"#),
        ("uploadFile", "Validation", r#"{"FileName": 5}"#),
        ("listFiles", "Server", html),
        ("getPublicImage", "Server", html),
        ("getFileStatus", "Server", "upstream down"),
    ] {
        let error = clients.call(operation).await.unwrap_err();
        assert_eq!(variant(&error), variant_name, "{operation}: {error:?}");
        match error.body() {
            Some(ErrorBody::Unexpected(body)) => assert_eq!(body, text, "{operation}"),
            other => panic!("{operation}: {other:?}"),
        }
        assert!(error.request_id().is_some(), "{operation}");
        shown.push(format!("{operation}: {error:?}"));
    }
    insta::assert_snapshot!("malformed_error_bodies", shown.join("\n"));
}

#[tokio::test]
async fn not_modified_carries_the_etag() {
    let server = Server::fixed(
        Reply::empty(304)
            .header("etag", "\"etag-1\"")
            .header("x-request-id", "rid-304"),
    )
    .await;
    let clients = Clients::new(&server);
    let error = clients.call("getPublicImage").await.unwrap_err();
    let ApiError::NotModified { etag, request_id } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(etag.as_deref(), Some("\"etag-1\""));
    assert_eq!(request_id.as_deref(), Some("rid-304"));
    assert!(!error.is_retryable());
    let requests = server.requests();
    assert_eq!(requests[0].header("if-none-match"), Some("\"etag-0\""));
}
