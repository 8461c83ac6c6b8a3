//! The committed spec, `openapi/openapi.yaml`, is what the code generates. Run with
//! `UPDATE_OPENAPI=1` to rewrite it after an intended API change.

use std::collections::HashSet;

#[test]
fn the_committed_spec_matches_the_code() {
    let generated = linli::api::openapi_yaml();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.yaml");
    if std::env::var("UPDATE_OPENAPI").is_ok() {
        std::fs::write(&path, &generated).expect("write openapi/openapi.yaml");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.yaml is out of date with the code: run `UPDATE_OPENAPI=1 cargo test --test api openapi` \
         (or `cargo run -- openapi > openapi/openapi.yaml`) and commit it"
    );
}

#[test]
fn every_operation_has_a_unique_operation_id_and_documents_its_errors() {
    let spec: serde_json::Value = serde_json::from_str(&linli::api::openapi_service().spec()).unwrap();
    let mut ids = HashSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(ids.insert(id.to_owned()), "operationId {id} is used twice");
            for status in ["400", "401", "404", "500"] {
                assert!(op["responses"][status].is_object(), "{method} {path} does not document {status}");
            }
        }
    }
    assert!(ids.len() >= 20, "only {} operations", ids.len());
}
