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

/// The request middleware can refuse any operation before it runs: too many requests (429, with
/// `Retry-After`), a body too large (413) or too slow (408). Generated clients and schemathesis
/// accept only documented answers, so every operation documents these.
#[test]
fn every_operation_documents_the_refusals_of_the_middleware() {
    let spec: serde_json::Value = serde_json::from_str(&linli::api::openapi_service().spec()).unwrap();
    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for status in ["408", "413", "429"] {
                let answer = &op["responses"][status];
                assert!(answer.is_object(), "{method} {path} does not document {status}");
                assert!(
                    answer["content"].to_string().contains("#/components/schemas/ErrorBody"),
                    "{method} {path}: {status} is not the error body"
                );
            }
            let retry_after = op["responses"]["429"]["headers"]
                .as_object()
                .and_then(|h| h.iter().find(|(name, _)| name.eq_ignore_ascii_case("retry-after")))
                .map(|(_, header)| header.clone());
            assert!(
                retry_after.is_some_and(|h| h["required"] == true && h["schema"]["type"] == "integer"),
                "{method} {path}: 429 does not document Retry-After"
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} operations");
}

/// A list's page size is capped, and the spec says by how much.
#[test]
fn every_page_size_has_a_documented_maximum() {
    let spec: serde_json::Value = serde_json::from_str(&linli::api::openapi_service().spec()).unwrap();
    let mut capped = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for param in op["parameters"].as_array().into_iter().flatten() {
                let name = param["name"].as_str().unwrap_or_default();
                if ["page_size", "limit", "per_page"].contains(&name) {
                    let max = param["schema"]["maximum"].as_f64();
                    assert!(max.is_some_and(|m| m <= 200.0), "{method} {path}: {name} has no maximum of 200 or less");
                    capped += 1;
                }
            }
        }
    }
    assert!(capped >= 20, "only {capped} paged lists found");
}

/// Every list pages the same way: an operation that answers `items` takes `page` and `page_size`
/// (nothing a resident or an operator lists is unbounded).
#[test]
fn every_list_takes_page_and_page_size() {
    let spec: serde_json::Value = serde_json::from_str(&linli::api::openapi_service().spec()).unwrap();
    let schemas = &spec["components"]["schemas"];
    let mut lists = 0;
    let mut unpaged = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        let Some(op) = item.get("get") else { continue };
        let Some(content) = op["responses"]["200"]["content"].as_object() else { continue };
        let Some(schema) = content.values().find_map(|c| c["schema"]["$ref"].as_str()) else { continue };
        let name = schema.trim_start_matches("#/components/schemas/");
        if schemas[name]["properties"]["items"]["type"] != "array" {
            continue;
        }
        lists += 1;
        let params: HashSet<&str> =
            op["parameters"].as_array().into_iter().flatten().filter_map(|p| p["name"].as_str()).collect();
        if !(params.contains("page") && params.contains("page_size")) {
            unpaged.push(format!("GET {path}"));
        }
    }
    assert!(lists >= 20, "only {lists} lists found");
    assert!(unpaged.is_empty(), "lists without page and page_size: {unpaged:?}");
}

/// Every `ErrorCode` is one the code can answer with (no code listed in the spec that nothing
/// raises), each is snake_case and unique, and the spec lists exactly the enum's codes.
#[test]
fn error_codes_are_one_enum_listed_in_the_spec() {
    use linli::codes::ErrorCode;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut sources = String::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("codes.rs") {
                sources.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut seen = HashSet::new();
    let mut unused = Vec::new();
    for code in ErrorCode::ALL {
        let s = code.as_str();
        assert!(seen.insert(s), "{s} twice");
        assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') && !s.starts_with('_'), "{s} is not snake_case");
        if !sources.contains(&format!("ErrorCode::{code:?}")) {
            unused.push(s);
        }
    }
    assert!(unused.is_empty(), "codes nothing answers with: {unused:?}");
    let spec: serde_json::Value = serde_json::from_str(&linli::api::openapi_service().spec()).unwrap();
    let listed: HashSet<&str> = spec["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(listed, seen, "the spec's ErrorCode differs from the enum");
    assert_eq!(
        spec["components"]["schemas"]["ErrorBody"]["properties"]["code"]["$ref"],
        "#/components/schemas/ErrorCode"
    );
}
