//! The generated API surface, checked against the specs.
//!
//! - one snapshot per spec listing every public method signature of the
//!   generated client (one line each), so any spec or generator change shows
//!   up as a reviewable diff;
//! - every operationId in `openapi/*.yaml` has a `pub async fn` of its
//!   snake_case name;
//! - `errors::OPERATIONS` lists exactly the spec's operations.

// Helpers outside #[test] fns unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::{snake_case, Spec};
use docsync_client::{attachments, moov};

/// Every `pub async fn` signature in `source`, normalised to one line
/// (whitespace collapsed, no trailing commas), sorted by name.
fn signatures(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = source;
    while let Some(start) = rest.find("pub async fn ") {
        let tail = &rest[start..];
        let end = tail
            .find('{')
            .unwrap_or_else(|| panic!("no body after `{}`", &tail[..tail.len().min(80)]));
        let collapsed = tail[..end].split_whitespace().collect::<Vec<_>>().join(" ");
        let line = collapsed
            .replace("( ", "(")
            .replace(" )", ")")
            .replace(",)", ")")
            .replace("< ", "<")
            .replace(" >", ">")
            .replace(",>", ">");
        out.push(format!("{};", line.trim_end()));
        rest = &tail[end..];
    }
    out.sort_by_key(|line| method_name(line).to_string());
    out
}

/// `pub async fn list_files<'a>(...` -> `list_files`.
fn method_name(signature: &str) -> &str {
    let after = signature.trim_start_matches("pub async fn ");
    let end = after
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(after.len());
    &after[..end]
}

fn generated(spec: Spec) -> String {
    std::fs::read_to_string(spec.generated_path()).unwrap()
}

#[test]
fn signature_scan_normalises_multi_line_signatures() {
    let source = "impl C {\n    pub async fn b<'a>(\n        &'a self,\n        x: Option<\n            &'a str,\n        >,\n    ) -> Result<(), E> {\n        todo!()\n    }\n    pub async fn a(&self) -> u8 { 1 }\n}";
    assert_eq!(
        signatures(source),
        [
            "pub async fn a(&self) -> u8;",
            "pub async fn b<'a>(&'a self, x: Option<&'a str>) -> Result<(), E>;",
        ]
    );
}

#[test]
fn moov_api_surface() {
    insta::assert_snapshot!("moov", signatures(&generated(Spec::Moov)).join("\n"));
}

#[test]
fn attachments_api_surface() {
    insta::assert_snapshot!(
        "attachments",
        signatures(&generated(Spec::Attachments)).join("\n")
    );
}

#[test]
fn every_operation_id_has_a_method() {
    let mut missing = Vec::new();
    let mut count = 0;
    for spec in Spec::ALL {
        let methods: BTreeSet<String> = signatures(&generated(spec))
            .iter()
            .map(|s| method_name(s).to_string())
            .collect();
        for op in spec.operations() {
            count += 1;
            let name = snake_case(&op.id);
            if !methods.contains(&name) {
                missing.push(format!(
                    "{}: {} ({} {}) has no `pub async fn {name}`",
                    spec.name(),
                    op.id,
                    op.method.to_uppercase(),
                    op.path
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "operations without a method in src/generated (run `cargo xtask codegen`):\n{}",
        missing.join("\n")
    );
    // 11 Moov operations + 3 attachments operations today; never zero.
    assert!(count >= 14, "only {count} operations found in openapi/");
}

#[test]
fn errors_operations_match_the_specs() {
    for (spec, table) in [
        (Spec::Moov, moov::errors::OPERATIONS),
        (Spec::Attachments, attachments::errors::OPERATIONS),
    ] {
        let expected: BTreeSet<(String, String, String, String)> = spec
            .operations()
            .into_iter()
            .map(|op| {
                let name = snake_case(&op.id);
                (op.id, name, op.method, op.path)
            })
            .collect();
        let actual: BTreeSet<(String, String, String, String)> = table
            .iter()
            .map(|(id, name, method, path)| {
                (
                    id.to_string(),
                    name.to_string(),
                    method.to_string(),
                    path.to_string(),
                )
            })
            .collect();
        assert_eq!(
            actual.len(),
            table.len(),
            "{}: duplicate rows in errors::OPERATIONS",
            spec.name()
        );
        let missing: Vec<_> = expected.difference(&actual).collect();
        let extra: Vec<_> = actual.difference(&expected).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{}: errors::OPERATIONS differs from the spec\nmissing: {missing:#?}\nextra: {extra:#?}",
            spec.name()
        );
    }
}

#[test]
fn snake_case_matches_the_generator() {
    for (id, name) in [
        ("createAccessToken", "create_access_token"),
        ("getSignedUrl", "get_signed_url"),
        ("listImageMetadata", "list_image_metadata"),
        ("getURL", "get_url"),
        ("uploadV2File", "upload_v2_file"),
    ] {
        assert_eq!(snake_case(id), name, "{id}");
    }
}
