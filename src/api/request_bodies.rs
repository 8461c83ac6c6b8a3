//! Every operation's JSON request body, checked strictly against its schema in the generated spec
//! before the operation runs. poem-openapi's own parsing is lax where the spec is not: it takes a
//! number or a boolean sent for a string as its text (`String::parse_from_json`) and `null` for a
//! field that is not nullable as "absent" (`Option<T>`, `#[oai(default)]`), so a body the spec
//! refuses could be stored. Read from the spec, the check cannot drift from the operations, and
//! covers all of them at once.

use poem::http::Method;
use serde_json::Value;

use super::json_schema::{Components, Schema};
use super::path_template::{best_match, PathTemplate};

/// A path of the spec and the JSON bodies its operations take.
#[derive(Debug)]
struct PathBodies {
    path: PathTemplate,
    operations: Vec<OperationBody>,
}

#[derive(Debug)]
struct OperationBody {
    method: Method,
    schema: Schema,
}

#[derive(Debug, Default)]
pub struct RequestBodies {
    components: Components,
    paths: Vec<PathBodies>,
}

impl RequestBodies {
    /// The JSON request bodies of an OpenAPI document (JSON).
    pub fn from_spec(spec_json: &str) -> serde_json::Result<Self> {
        let spec: Value = serde_json::from_str(spec_json)?;
        let components = Components::from_spec(&spec);
        let mut paths = Vec::new();
        for (path, item) in spec.get("paths").and_then(Value::as_object).into_iter().flatten() {
            let mut operations = Vec::new();
            for (method, op) in item.as_object().into_iter().flatten() {
                let Ok(method) = Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else { continue };
                let media = op.pointer("/requestBody/content").and_then(Value::as_object);
                let json = media.into_iter().flatten().find(|(ct, _)| is_json(ct));
                if let Some(schema) = json.and_then(|(_, m)| m.get("schema")) {
                    operations.push(OperationBody { method, schema: components.compile(schema) });
                }
            }
            // Paths without bodies stay in the table: a request must be matched against every
            // route, as the router matches it, not only against those taking a body.
            paths.push(PathBodies { path: PathTemplate::parse(path), operations });
        }
        Ok(Self { components, paths })
    }

    /// Checks a request's body against its operation's schema: only a JSON body (by its
    /// `Content-Type`) that parses, to an operation of the spec. Anything else is left to the
    /// operation, which refuses an unreadable body or content type on its own. The error says
    /// what is wrong, naming the field.
    pub fn check(&self, method: &Method, path: &str, content_type: Option<&str>, body: &[u8]) -> Result<(), String> {
        if !content_type.is_some_and(is_json) {
            return Ok(());
        }
        let Some(route) = best_match(self.paths.iter().map(|p| (&p.path, p)), path) else { return Ok(()) };
        let Some(op) = route.operations.iter().find(|op| op.method == *method) else { return Ok(()) };
        let Ok(value) = serde_json::from_slice::<Value>(body) else { return Ok(()) };
        self.components.check(&op.schema, &value)
    }
}

/// `application/json` or `application/…+json`, with any parameters, as poem-openapi's `Json` takes.
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r##"{
      "paths": {
        "/orgs/{org_id}": {
          "get": {"operationId": "get_org"},
          "patch": {"operationId": "update_org", "requestBody": {"content": {
            "application/json; charset=utf-8": {"schema": {"$ref": "#/components/schemas/UpdateOrg"}}}}}
        },
        "/orgs/{org_id}/rooms/import": {
          "post": {"operationId": "import_rooms", "requestBody": {"content": {
            "application/json; charset=utf-8": {"schema": {"$ref": "#/components/schemas/RoomImport"}},
            "text/csv": {"schema": {"type": "string"}}}}}
        },
        "/orgs/mine": {"patch": {"operationId": "update_mine"}}
      },
      "components": {"schemas": {
        "UpdateOrg": {"type": "object", "required": ["name"], "properties": {
          "name": {"type": "string", "minLength": 1, "maxLength": 4},
          "address": {"type": "string", "nullable": true},
          "kind": {"$ref": "#/components/schemas/OrgKind"},
          "parent": {"allOf": [{"$ref": "#/components/schemas/OrgRef"}, {"nullable": true}], "nullable": true},
          "points": {"type": "integer", "format": "int64", "minimum": 0.0, "maximum": 100.0},
          "count": {"type": "integer", "format": "uint32"},
          "active": {"type": "boolean"}
        }},
        "OrgKind": {"type": "string", "enum": ["company", "community"]},
        "OrgRef": {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer", "format": "int64"}}},
        "RoomImport": {"type": "object", "required": ["rows"], "properties": {
          "rows": {"type": "array", "maxItems": 2, "items": {"$ref": "#/components/schemas/Row"}}}},
        "Row": {"type": "object", "required": ["number"], "properties": {"number": {"type": "string"}}}
      }}
    }"##;

    const JSON: Option<&str> = Some("application/json; charset=utf-8");

    fn check(method: Method, path: &str, content_type: Option<&str>, body: &str) -> Result<(), String> {
        let bodies = RequestBodies::from_spec(SPEC).unwrap();
        bodies.check(&method, path, content_type, body.as_bytes())
    }

    fn update(body: &str) -> Result<(), String> {
        check(Method::PATCH, "/orgs/7", JSON, body)
    }

    #[test]
    fn a_body_that_fits_its_schema_passes() {
        assert_eq!(update(r#"{"name": "Acme"}"#), Ok(()));
        let full = r#"{"name": "名字", "address": null, "kind": "company", "parent": {"id": 1}, "points": 100,
                       "count": 4294967295, "active": false}"#;
        assert_eq!(update(full), Ok(()));
        assert_eq!(update(r#"{"name": "A", "parent": null}"#), Ok(()));
        // Unknown fields are the operation's to refuse (`deny_unknown_fields`).
        assert_eq!(update(r#"{"name": "A", "extra": 1}"#), Ok(()));
    }

    #[test]
    fn a_value_of_the_wrong_json_type_is_refused_naming_the_field() {
        assert_eq!(update(r#"{"name": 12}"#), Err("`name` must be a string, not a number".into()));
        assert_eq!(update(r#"{"name": false}"#), Err("`name` must be a string, not a boolean".into()));
        assert_eq!(update(r#"{"name": "A", "points": "5"}"#), Err("`points` must be an integer, not a string".into()));
        assert_eq!(update(r#"{"name": "A", "points": 1.5}"#), Err("`points` must be an integer, not 1.5".into()));
        assert_eq!(
            update(r#"{"name": "A", "active": "true"}"#),
            Err("`active` must be a boolean, not a string".into())
        );
        assert_eq!(
            update(r#"{"name": "A", "parent": {"id": "1"}}"#),
            Err("`parent.id` must be an integer, not a string".into())
        );
        assert_eq!(update(r#"["name"]"#), Err("the body must be an object, not an array".into()));
    }

    #[test]
    fn null_is_a_value_only_where_nullable() {
        assert_eq!(update(r#"{"name": null}"#), Err("`name` must be a string, not null".into()));
        assert_eq!(update(r#"{"name": "A", "kind": null}"#), Err("`kind` must be a string, not null".into()));
        assert_eq!(update("null"), Err("the body must be an object, not null".into()));
    }

    #[test]
    fn required_enum_lengths_and_ranges_hold() {
        assert_eq!(update("{}"), Err("`name` is required".into()));
        assert_eq!(update(r#"{"name": ""}"#), Err("`name` must be at least 1 characters long".into()));
        assert_eq!(update(r#"{"name": "名字名字"}"#), Ok(()));
        assert_eq!(update(r#"{"name": "ABCDE"}"#), Err("`name` must be at most 4 characters long".into()));
        assert_eq!(update(r#"{"name": "A", "kind": "shop"}"#), Err("`kind` must be one of company, community".into()));
        assert_eq!(update(r#"{"name": "A", "points": -1}"#), Err("`points` must be at least 0".into()));
        assert_eq!(update(r#"{"name": "A", "points": 101}"#), Err("`points` must be at most 100".into()));
        assert_eq!(update(r#"{"name": "A", "count": -1}"#), Err("`count` must be at least 0".into()));
        assert_eq!(update(r#"{"name": "A", "count": 4294967296}"#), Err("`count` must be at most 4294967295".into()));
    }

    #[test]
    fn arrays_check_their_length_and_every_item() {
        let import = |body: &str| check(Method::POST, "/orgs/7/rooms/import", JSON, body);
        assert_eq!(import(r#"{"rows": [{"number": "101"}]}"#), Ok(()));
        assert_eq!(import(r#"{"rows": {"number": "101"}}"#), Err("`rows` must be an array, not an object".into()));
        assert_eq!(
            import(r#"{"rows": [{"number": "101"}, {"number": 102}]}"#),
            Err("`rows[1].number` must be a string, not a number".into())
        );
        assert_eq!(import(r#"{"rows": [{}, {}, {}]}"#), Err("`rows` must have at most 2 items".into()));
    }

    #[test]
    fn only_json_bodies_of_spec_operations_are_checked() {
        // Another content type, none, or a body that is not JSON: the operation answers for them.
        assert_eq!(check(Method::POST, "/orgs/7/rooms/import", Some("text/csv"), "building,unit,number"), Ok(()));
        assert_eq!(check(Method::PATCH, "/orgs/7", None, r#"{"name": 1}"#), Ok(()));
        assert_eq!(check(Method::PATCH, "/orgs/7", JSON, r#"{"name": "#), Ok(()));
        // A `+json` type is JSON too.
        assert!(check(Method::PATCH, "/orgs/7", Some("application/merge-patch+json"), r#"{"name": 1}"#).is_err());
        // A method, path or route without a body.
        assert_eq!(check(Method::GET, "/orgs/7", JSON, r#"{"name": 1}"#), Ok(()));
        assert_eq!(check(Method::PATCH, "/nowhere", JSON, r#"{"name": 1}"#), Ok(()));
        // `/orgs/mine` is its own route, which takes no body, not `/orgs/{org_id}`.
        assert_eq!(check(Method::PATCH, "/orgs/mine", JSON, r#"{"name": 1}"#), Ok(()));
    }
}
