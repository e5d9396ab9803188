//! Fuzzing the response decoders: whatever a server (or a proxy in front of
//! it) answers, decoding returns a value or an error and never panics.
//!
//! Three kinds of input: arbitrary bytes; arbitrary JSON; and JSON shaped like
//! the spec's bodies (the real field names, with values that are sometimes
//! right, sometimes of the wrong type, sometimes unknown enum values). Every
//! decoder gets every input: the generated error-body decoders of both APIs
//! for every operation and status, and the success-body types the daemon
//! reads (`FileDetails`, `Vec<FileDetails>`, `ImageMetadata`, the attachments
//! `FileStatus`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use docsync_client::{attachments, moov};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// Statuses worth trying: the documented ones and a few others.
const STATUSES: &[u16] = &[
    200, 201, 204, 304, 400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 502, 503, 504, 599,
];

/// Every field name of the bodies the daemon reads, plus a few of error bodies.
const FIELDS: &[&str] = &[
    "fileID",
    "fileName",
    "fileStatus",
    "filePurpose",
    "fileSizeBytes",
    "accountID",
    "createdOn",
    "updatedOn",
    "decisionReason",
    "metadata",
    "imageID",
    "publicID",
    "altText",
    "link",
    "file_id",
    "status",
    "reason",
    "size",
    "error",
    "message",
    "error_code",
    "detail",
    "file",
    "file_purpose",
];

/// Strings that are valid somewhere (ids, dates, enum values) and some that are not.
fn interesting_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("pending".to_owned()),
        Just("approved".to_owned()),
        Just("rejected".to_owned()),
        Just("archived".to_owned()),
        Just("ready".to_owned()),
        Just("processing".to_owned()),
        Just("failed".to_owned()),
        Just("business_verification".to_owned()),
        Just("2026-11-23T01:52:28Z".to_owned()),
        Just("not a date".to_owned()),
        Just("0b9a2f5e-6f3c-4c1e-9a57-2d1f1f7e2c11".to_owned()),
        Just(String::new()),
        Just("\u{0}\u{ffff}é🦀".to_owned()),
        ".{0,80}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        interesting_string().prop_map(Value::String),
    ]
}

/// Arbitrary JSON values.
fn any_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Objects with the spec's field names and arbitrary (often plausible) values.
fn shaped_object() -> impl Strategy<Value = Value> {
    let value = prop_oneof![3 => leaf(), 1 => any_json()];
    prop::collection::btree_map(prop::sample::select(FIELDS), value, 0..FIELDS.len())
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

/// A complete, valid `FileDetails` with one field replaced or removed.
fn mutated_file_details() -> impl Strategy<Value = Value> {
    (prop::sample::select(FIELDS), prop::option::of(any_json())).prop_map(|(field, value)| {
        let mut object: Map<String, Value> = match valid_file_details() {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        match value {
            Some(v) => object.insert(field.to_owned(), v),
            None => object.remove(field),
        };
        Value::Object(object)
    })
}

fn valid_file_details() -> Value {
    json!({
        "fileID": "f-1",
        "fileName": "passport.pdf",
        "fileStatus": "pending",
        "filePurpose": "business_verification",
        "fileSizeBytes": 1024,
        "accountID": "00000000-0000-4000-8000-000000000001",
        "createdOn": "2026-11-23T01:52:28Z",
        "updatedOn": "2026-11-23T01:52:28Z",
        "metadata": "{\"comment\":\"x\"}",
    })
}

/// Feed `body` to every decoder; only a panic fails.
fn decode_everything(body: &[u8]) {
    for &(_, operation, _, _) in moov::errors::OPERATIONS {
        for &status in STATUSES {
            let _ = moov::errors::decode(operation, status, body);
        }
    }
    for &(_, operation, _, _) in attachments::errors::OPERATIONS {
        for &status in STATUSES {
            let _ = attachments::errors::decode(operation, status, body);
        }
    }
    let _ = moov::errors::decode("no_such_operation", 400, body);
    let _ = serde_json::from_slice::<moov::types::FileDetails>(body);
    let _ = serde_json::from_slice::<Vec<moov::types::FileDetails>>(body);
    let _ = serde_json::from_slice::<moov::types::ImageMetadata>(body);
    let _ = serde_json::from_slice::<Vec<moov::types::ImageMetadata>>(body);
    let _ = serde_json::from_slice::<attachments::types::FileStatus>(body);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_everything(&body);
    }

    #[test]
    fn arbitrary_json_never_panics(value in any_json()) {
        decode_everything(&serde_json::to_vec(&value).unwrap());
    }

    #[test]
    fn spec_shaped_json_never_panics(value in shaped_object()) {
        decode_everything(&serde_json::to_vec(&value).unwrap());
        decode_everything(&serde_json::to_vec(&json!([value])).unwrap());
    }

    #[test]
    fn one_wrong_field_never_panics(value in mutated_file_details()) {
        let bytes = serde_json::to_vec(&value).unwrap();
        decode_everything(&bytes);
        decode_everything(&serde_json::to_vec(&json!([value])).unwrap());
    }

    /// Truncating a valid body anywhere (a proxy cutting the connection) is an
    /// error, not a panic, and not a silently different value.
    #[test]
    fn truncated_bodies_are_errors(cut in 0usize..200) {
        let body = serde_json::to_vec(&json!([valid_file_details()])).unwrap();
        let cut = cut.min(body.len().saturating_sub(1));
        decode_everything(&body[..cut]);
        prop_assert!(serde_json::from_slice::<Vec<moov::types::FileDetails>>(&body[..cut]).is_err());
    }
}

/// The shapes the generators mutate really are the spec's: the valid body
/// decodes, and an unknown status is kept (open enums), not an error.
#[test]
fn the_valid_body_decodes_and_unknown_statuses_are_kept() {
    let details: moov::types::FileDetails = serde_json::from_value(valid_file_details()).unwrap();
    assert_eq!(details.file_id, "f-1");
    let mut archived = valid_file_details();
    archived["fileStatus"] = json!("archived");
    let details: moov::types::FileDetails = serde_json::from_value(archived).unwrap();
    assert!(
        matches!(details.file_status, moov::types::FileStatus::Unknown(ref s) if s == "archived"),
        "{:?}",
        details.file_status
    );
    let status: attachments::types::FileStatus = serde_json::from_value(json!({
        "file_id": "0b9a2f5e-6f3c-4c1e-9a57-2d1f1f7e2c11",
        "status": "quarantined",
    }))
    .unwrap();
    assert!(matches!(
        status.status,
        attachments::types::ProcessingState::Unknown(_)
    ));
    // a documented error body decodes as such; garbage under a documented status is Malformed
    assert!(matches!(
        moov::errors::decode("upload_file", 400, b"<html>502 Bad Gateway</html>"),
        moov::errors::Decoded::Malformed(_)
    ));
}
