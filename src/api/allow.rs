//! Which methods each route answers, for the `Allow` header that a 405 must carry (RFC 9110,
//! 15.5.6). The API operations' methods are read from the spec the service generates, so they
//! cannot drift from the routes; the few routes outside the spec are added where they are mounted.

use poem::http::Method;

use super::path_template::{best_match, PathTemplate};

#[derive(Debug)]
struct Template {
    path: PathTemplate,
    /// The `Allow` value: the methods in a fixed order, `HEAD` beside `GET` (poem answers a
    /// `HEAD` with the `GET` handler).
    allow: String,
}

/// The `Allow` header value of every route.
#[derive(Debug, Default)]
pub struct AllowedMethods {
    templates: Vec<Template>,
}

/// The methods an OpenAPI path item can hold, in the order the header lists them.
const ORDER: [Method; 8] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
    Method::TRACE,
];

impl AllowedMethods {
    /// The operations of an OpenAPI document (JSON): each path with the methods it lists.
    pub fn from_spec(spec_json: &str) -> serde_json::Result<Self> {
        let spec: serde_json::Value = serde_json::from_str(spec_json)?;
        let mut table = Self::default();
        if let Some(paths) = spec.get("paths").and_then(|p| p.as_object()) {
            for (path, item) in paths {
                let methods: Vec<Method> = item
                    .as_object()
                    .into_iter()
                    .flat_map(|ops| ops.keys())
                    .filter_map(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
                    .collect();
                table = table.with(path, &methods);
            }
        }
        Ok(table)
    }

    /// Adds a route (`{name}` segments are parameters) answering `methods`.
    pub fn with(mut self, path: &str, methods: &[Method]) -> Self {
        let answers = |m: &Method| methods.contains(m) || (*m == Method::HEAD && methods.contains(&Method::GET));
        let allow = ORDER.iter().filter(|m| answers(m)).map(Method::as_str).collect::<Vec<_>>().join(", ");
        self.templates.push(Template { path: PathTemplate::parse(path), allow });
        self
    }

    /// The `Allow` value for a request path, from the route it matches; where several match (a
    /// literal segment and a parameter), the one with more literal segments wins, as in routing.
    pub fn for_path(&self, path: &str) -> Option<&str> {
        best_match(self.templates.iter().map(|t| (&t.path, t.allow.as_str())), path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"{"paths": {
        "/admin/v1/orgs": {"get": {}, "post": {}},
        "/admin/v1/orgs/{org_id}": {"get": {}, "patch": {}, "delete": {}},
        "/admin/v1/orgs/mine": {"put": {}},
        "/mp/v1/sessions/current": {"delete": {}}
    }}"#;

    #[test]
    fn the_spec_paths_answer_their_methods_and_head_beside_get() {
        let table = AllowedMethods::from_spec(SPEC).unwrap().with("/healthz", &[Method::GET]);
        assert_eq!(table.for_path("/admin/v1/orgs"), Some("GET, HEAD, POST"));
        assert_eq!(table.for_path("/admin/v1/orgs/42"), Some("GET, HEAD, PATCH, DELETE"));
        assert_eq!(table.for_path("/mp/v1/sessions/current"), Some("DELETE"));
        assert_eq!(table.for_path("/healthz"), Some("GET, HEAD"));
    }

    #[test]
    fn a_literal_segment_wins_over_a_parameter() {
        let table = AllowedMethods::from_spec(SPEC).unwrap();
        assert_eq!(table.for_path("/admin/v1/orgs/mine"), Some("PUT"));
    }

    #[test]
    fn unknown_paths_and_empty_parameters_have_none() {
        let table = AllowedMethods::from_spec(SPEC).unwrap();
        assert_eq!(table.for_path("/admin/v1/orgs/"), None);
        assert_eq!(table.for_path("/admin/v1/orgs/42/extra"), None);
        assert_eq!(table.for_path("/nowhere"), None);
    }
}
