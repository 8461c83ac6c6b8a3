//! A list operation's query parameters as one struct, documented as the separate parameters they
//! are on the wire.
//!
//! poem-openapi binds one handler argument to one parameter, so a list with eight filters took
//! eight arguments. Here a handler takes one [`QueryParams<T>`], where `T` is an `Object` whose
//! fields are the parameters (their docs, renames and validators as usual), usually declared with
//! [`list_query!`] so paging comes with it. On the wire nothing changes: `?state=pending&page=2`.
//! In the spec, [`Flattened`] replaces the struct's one parameter by one query parameter per field,
//! so the published document lists exactly what a client sends.

use std::collections::HashMap;

use poem::http::Method;
use poem::{Request, RequestBody};
use poem_openapi::error::ParseParamError;
use poem_openapi::registry::{MetaApi, MetaOperationParam, MetaParamIn, MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, Type};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions, OpenApi};
use serde_json::{Map, Number, Value};

/// Marks the inline schema of a [`QueryParams`] parameter until [`Flattened`] expands it.
const MARKER: &str = "linli:query-params";

/// The query parameters of an operation, parsed into `T` and checked by `T`'s validators.
#[derive(Debug, Clone)]
pub struct QueryParams<T>(pub T);

impl<T> std::ops::Deref for QueryParams<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// `T`'s own schema, with its fields' types registered in `registry`.
fn object_schema<T: Type>(registry: &mut Registry) -> MetaSchema {
    let mut own = Registry::new();
    T::register(&mut own);
    let schema = own.schemas.remove(&T::name().to_string()).unwrap_or_else(|| MetaSchema::new("object"));
    for (name, s) in own.schemas {
        registry.schemas.entry(name).or_insert(s);
    }
    schema
}

/// The JSON type a query value of this schema is read as: integers, numbers and booleans by
/// their text, everything else (strings, enums, times) as a string.
fn json_value(schema: &MetaSchemaRef, raw: &str) -> Value {
    let ty = match schema {
        MetaSchemaRef::Inline(s) if s.all_of.is_empty() => s.ty,
        _ => "string",
    };
    let parsed = match ty {
        "integer" => raw.parse::<i64>().map(Number::from).ok().or_else(|| raw.parse::<u64>().ok().map(Number::from)),
        "number" => raw.parse::<f64>().ok().and_then(Number::from_f64),
        "boolean" => return raw.parse::<bool>().map_or_else(|_| Value::String(raw.to_owned()), Value::Bool),
        _ => None,
    };
    // A value that is not of its type stays a string, for `T`'s parser to refuse by name.
    parsed.map_or_else(|| Value::String(raw.to_owned()), Value::Number)
}

impl<'a, T: ParseFromJSON + Send> ApiExtractor<'a> for QueryParams<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::Parameter];

    type ParamType = T;
    type ParamRawType = T;

    fn register(registry: &mut Registry) {
        // The fields' types (enums) go into the document; the struct itself does not, since it
        // is never on the wire as one value.
        object_schema::<T>(registry);
    }

    fn param_in() -> Option<MetaParamIn> {
        Some(MetaParamIn::Query)
    }

    fn param_schema_ref() -> Option<MetaSchemaRef> {
        let mut schema = object_schema::<T>(&mut Registry::new());
        schema.title = Some(MARKER.to_owned());
        Some(MetaSchemaRef::Inline(Box::new(schema)))
    }

    async fn from_request(
        request: &'a Request,
        _body: &mut RequestBody,
        param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let pairs: Vec<(String, String)> =
            request.params().map_err(|e| ParseParamError { name: param_opts.name, reason: e.to_string() })?;
        let schema = object_schema::<T>(&mut Registry::new());
        let mut fields = Map::new();
        for (name, raw) in pairs {
            // The first of repeated names counts, as for any other query parameter; names that
            // are no field are ignored, as they are elsewhere.
            let Some((_, field)) = schema.properties.iter().find(|(n, _)| *n == name) else { continue };
            if !fields.contains_key(&name) {
                let value = json_value(field, &raw);
                fields.insert(name, value);
            }
        }
        match T::parse_from_json(Some(Value::Object(fields.clone()))) {
            Ok(parsed) => Ok(QueryParams(parsed)),
            Err(e) => {
                // `T`'s parser does not say which field it refused; the answer names it.
                let name = culprit::<T>(&schema, &fields).unwrap_or(param_opts.name);
                Err(ParseParamError { name, reason: e.into_message() }.into())
            }
        }
    }
}

/// The field a parse of `fields` fails on: a required one that is missing, or the first whose
/// value, added to those before it, no longer parses. Required fields are tried together (the
/// structs here have at most one).
fn culprit<T: ParseFromJSON>(schema: &MetaSchema, fields: &Map<String, Value>) -> Option<&'static str> {
    if let Some(missing) = schema.required.iter().find(|r| !fields.contains_key(**r)) {
        return Some(missing);
    }
    let parses = |probe: &Map<String, Value>| T::parse_from_json(Some(Value::Object(probe.clone()))).is_ok();
    let mut probe: Map<String, Value> = fields
        .iter()
        .filter(|(n, _)| schema.required.contains(&n.as_str()))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    if !parses(&probe) {
        return schema.required.first().copied();
    }
    for (name, _) in schema.properties.iter().filter(|(n, _)| !schema.required.contains(n)) {
        if let Some(value) = fields.get(*name) {
            probe.insert((*name).to_owned(), value.clone());
            if !parses(&probe) {
                return Some(name);
            }
        }
    }
    None
}

/// One query parameter per field of a [`QueryParams`] schema, as the field's own parameter would
/// have been documented: its doc as the parameter's description, its type and validators as the
/// parameter's schema.
fn expand(param: MetaOperationParam) -> Vec<MetaOperationParam> {
    let MetaSchemaRef::Inline(schema) = &param.schema else { return vec![param] };
    if schema.title.as_deref() != Some(MARKER) {
        return vec![param];
    }
    schema
        .properties
        .iter()
        .map(|(name, field)| {
            let (description, schema) = match field.clone() {
                MetaSchemaRef::Inline(mut s) => {
                    let description = s.description.take().map(str::to_owned);
                    // A named type with a doc is written `allOf: [$ref, {description}]`; without
                    // the doc it is the reference alone.
                    let unwrapped = match s.all_of.as_slice() {
                        [MetaSchemaRef::Reference(named), MetaSchemaRef::Inline(rest)]
                            if MetaSchema { description: None, ..(**rest).clone() }.is_empty() =>
                        {
                            Some(MetaSchemaRef::Reference(named.clone()))
                        }
                        _ => None,
                    };
                    (description, unwrapped.unwrap_or(MetaSchemaRef::Inline(s)))
                }
                reference => (None, reference),
            };
            MetaOperationParam {
                name: (*name).to_owned(),
                schema,
                in_type: MetaParamIn::Query,
                description,
                required: schema_requires(&param.schema, name),
                deprecated: false,
                explode: true,
                style: None,
            }
        })
        .collect()
}

fn schema_requires(schema: &MetaSchemaRef, field: &str) -> bool {
    matches!(schema, MetaSchemaRef::Inline(s) if s.required.contains(&field))
}

/// The operations of `T`, with every [`QueryParams`] parameter documented field by field.
pub struct Flattened<T>(pub T);

impl<T: OpenApi> OpenApi for Flattened<T> {
    fn meta() -> Vec<MetaApi> {
        let mut apis = T::meta();
        for operation in apis.iter_mut().flat_map(|a| a.paths.iter_mut()).flat_map(|p| p.operations.iter_mut()) {
            operation.params = std::mem::take(&mut operation.params).into_iter().flat_map(expand).collect();
        }
        apis
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn add_routes(self, route_table: &mut HashMap<String, HashMap<Method, poem::endpoint::BoxEndpoint<'static>>>) {
        self.0.add_routes(route_table);
    }
}

/// Declares a list operation's query parameters: the filters given, then `page` and
/// `page_size`, with [`page_request`](Self::page_request) for the page they ask for.
macro_rules! list_query {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $($(#[$fmeta:meta])* $fvis:vis $field:ident: $ty:ty,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, poem_openapi::Object)]
        $vis struct $name {
            $($(#[$fmeta])* $fvis $field: $ty,)*
            /// Page number, from 1.
            #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))]
            pub page: Option<u32>,
            /// Items per page, 1–200 (default 20).
            #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
            pub page_size: Option<u32>,
        }

        impl $name {
            /// The page asked for, with the defaults and bounds of every list.
            pub(crate) fn page_request(&self) -> $crate::db::PageRequest {
                $crate::api::common::page_request(self.page, self.page_size)
            }
        }
    };
}
