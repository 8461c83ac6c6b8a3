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

/// The server writes absent optional fields as `null`, so every optional property of a schema an
/// answer can carry must say `nullable: true`, or generated clients reject the answer.
#[test]
fn optional_fields_of_answers_are_declared_nullable() {
    let spec: serde_json::Value = serde_json::from_str(&linli::api::openapi_service().spec()).unwrap();
    let schemas = &spec["components"]["schemas"];
    let mut todo: Vec<String> = Vec::new();
    let refs_in = |v: &serde_json::Value, todo: &mut Vec<String>| {
        let text = v.to_string();
        for part in text.split("\"#/components/schemas/").skip(1) {
            todo.push(part.split('"').next().unwrap().to_owned());
        }
    };
    for item in spec["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            refs_in(&op["responses"], &mut todo);
        }
    }
    let mut seen = HashSet::new();
    let mut missing = Vec::new();
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let schema = &schemas[&name];
        refs_in(schema, &mut todo);
        let required: HashSet<&str> =
            schema["required"].as_array().map(|r| r.iter().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
        for (field, prop) in schema["properties"].as_object().into_iter().flatten() {
            // A field with a default is optional on input but always written on output.
            let always_written = prop.get("default").is_some();
            if !required.contains(field.as_str()) && !always_written && prop["nullable"] != true {
                missing.push(format!("{name}.{field}"));
            }
        }
    }
    assert!(seen.len() > 20, "only {} response schemas found", seen.len());
    assert!(missing.is_empty(), "optional response fields not declared nullable: {missing:?}");
}

/// poem-openapi writes an enum field with a doc comment, or a nullable one, as `allOf: [$ref, …]`,
/// and openapi-python-client drops every operation that uses such a schema. Enum fields must be
/// plain `$ref`s (document them on the struct instead).
#[test]
fn enum_fields_are_plain_references() {
    let spec: serde_json::Value = serde_json::from_str(&linli::api::openapi_service().spec()).unwrap();
    let schemas = spec["components"]["schemas"].as_object().unwrap();
    let mut wrapped = Vec::new();
    for (name, schema) in schemas {
        for (field, prop) in schema["properties"].as_object().into_iter().flatten() {
            let target = prop["allOf"][0]["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/schemas/"));
            if target.is_some_and(|t| schemas[t].get("enum").is_some()) {
                wrapped.push(format!("{name}.{field}"));
            }
        }
    }
    assert!(wrapped.is_empty(), "enum fields wrapped in allOf (described or nullable): {wrapped:?}");
}
