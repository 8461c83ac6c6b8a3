//! The part of OpenAPI 3.0's schema language our spec uses, compiled from the generated spec and
//! checked strictly against a JSON value: the JSON type (a number is not a string, `null` is a
//! value only where `nullable`), `required`, `enum`, an integer's `format` range,
//! `minimum`/`maximum`, `minLength`/`maxLength` (in characters, as poem-openapi counts),
//! `items`, `minItems`/`maxItems`, `$ref` and `allOf`. What it leaves out (`pattern`, string
//! formats such as `date-time`, unknown properties) poem-openapi already refuses on its own.

use std::collections::HashMap;

use serde_json::Value;

/// A compiled schema: what a value must be.
#[derive(Debug)]
pub struct Schema {
    shape: Shape,
    nullable: bool,
}

#[derive(Debug)]
enum Shape {
    /// No `type`: any value.
    Any,
    /// A named schema of `components/schemas`, by its index in [`Components`].
    Ref(usize),
    AllOf(Vec<Schema>),
    Boolean,
    Integer {
        min: i128,
        max: i128,
    },
    Number {
        min: Option<f64>,
        max: Option<f64>,
    },
    String {
        min_length: Option<usize>,
        max_length: Option<usize>,
        one_of: Option<Vec<String>>,
    },
    Array {
        items: Box<Schema>,
        min_items: Option<usize>,
        max_items: Option<usize>,
    },
    Object {
        properties: Vec<(String, Schema)>,
        required: Vec<String>,
    },
}

/// The spec's named schemas (`#/components/schemas/…`), which `$ref`s point into.
#[derive(Debug, Default)]
pub struct Components {
    names: HashMap<String, usize>,
    schemas: Vec<Schema>,
}

impl Components {
    /// Compiles every schema under `components/schemas` of an OpenAPI document.
    pub fn from_spec(spec: &Value) -> Self {
        let named = spec.pointer("/components/schemas").and_then(Value::as_object);
        let names: HashMap<String, usize> =
            named.into_iter().flatten().enumerate().map(|(i, (name, _))| (name.clone(), i)).collect();
        let mut components = Components { names, schemas: Vec::new() };
        let compiled: Vec<Schema> = named.into_iter().flatten().map(|(_, s)| components.compile(s)).collect();
        components.schemas = compiled;
        components
    }

    /// Compiles one schema; its `$ref`s must point into these components (an unknown one
    /// accepts anything rather than refusing every request).
    pub fn compile(&self, schema: &Value) -> Schema {
        let nullable = schema.get("nullable").and_then(Value::as_bool).unwrap_or(false);
        let usize_of = |key: &str| schema.get(key).and_then(Value::as_u64).and_then(|n| usize::try_from(n).ok());
        let shape = if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
            let name = target.strip_prefix("#/components/schemas/").unwrap_or(target);
            self.names.get(name).map_or(Shape::Any, |&i| Shape::Ref(i))
        } else if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            Shape::AllOf(all.iter().map(|s| self.compile(s)).collect())
        } else {
            match schema.get("type").and_then(Value::as_str) {
                Some("boolean") => Shape::Boolean,
                Some("integer") => {
                    let (lo, hi) = format_range(schema.get("format").and_then(Value::as_str));
                    let min = schema.get("minimum").and_then(Value::as_f64).map_or(lo, |m| lo.max(m.ceil() as i128));
                    let max = schema.get("maximum").and_then(Value::as_f64).map_or(hi, |m| hi.min(m.floor() as i128));
                    Shape::Integer { min, max }
                }
                Some("number") => Shape::Number {
                    min: schema.get("minimum").and_then(Value::as_f64),
                    max: schema.get("maximum").and_then(Value::as_f64),
                },
                Some("string") => Shape::String {
                    min_length: usize_of("minLength"),
                    max_length: usize_of("maxLength"),
                    one_of: schema
                        .get("enum")
                        .and_then(Value::as_array)
                        .map(|values| values.iter().filter_map(Value::as_str).map(str::to_owned).collect()),
                },
                Some("array") => Shape::Array {
                    items: Box::new(
                        schema.get("items").map_or(Schema { shape: Shape::Any, nullable: true }, |s| self.compile(s)),
                    ),
                    min_items: usize_of("minItems"),
                    max_items: usize_of("maxItems"),
                },
                Some("object") => Shape::Object {
                    properties: schema
                        .get("properties")
                        .and_then(Value::as_object)
                        .into_iter()
                        .flatten()
                        .map(|(name, s)| (name.clone(), self.compile(s)))
                        .collect(),
                    required: schema
                        .get("required")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect(),
                },
                _ => Shape::Any,
            }
        };
        Schema { shape, nullable }
    }

    /// Checks `value` against `schema`; the error names the first offending place, in words,
    /// e.g. "`rows[0].number` must be a string, not a boolean".
    pub fn check(&self, schema: &Schema, value: &Value) -> Result<(), String> {
        self.check_at(schema, value, &mut Place::default())
    }

    fn check_at(&self, schema: &Schema, value: &Value, at: &mut Place) -> Result<(), String> {
        if value.is_null() && schema.nullable {
            return Ok(());
        }
        let wrong_type = |want: &str| Err(format!("{at} must be {want}, not {}", kind_of(value)));
        match &schema.shape {
            Shape::Any => Ok(()),
            Shape::Ref(i) => self.check_at(&self.schemas[*i], value, at),
            Shape::AllOf(all) => all.iter().try_for_each(|s| self.check_at(s, value, at)),
            Shape::Boolean => {
                if value.is_boolean() {
                    Ok(())
                } else {
                    wrong_type("a boolean")
                }
            }
            Shape::Integer { min, max } => {
                let Value::Number(n) = value else { return wrong_type("an integer") };
                let Some(n) = n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from)) else {
                    return Err(format!("{at} must be an integer, not {n}"));
                };
                if n < *min {
                    return Err(format!("{at} must be at least {min}"));
                }
                if n > *max {
                    return Err(format!("{at} must be at most {max}"));
                }
                Ok(())
            }
            Shape::Number { min, max } => {
                let Some(n) = value.as_f64() else { return wrong_type("a number") };
                if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) {
                    return Err(format!("{at} is out of range"));
                }
                Ok(())
            }
            Shape::String { min_length, max_length, one_of } => {
                let Value::String(s) = value else { return wrong_type("a string") };
                if let Some(allowed) = one_of {
                    if !allowed.iter().any(|a| a == s) {
                        return Err(format!("{at} must be one of {}", allowed.join(", ")));
                    }
                }
                let chars = s.chars().count();
                if let Some(min) = min_length.filter(|&m| chars < m) {
                    return Err(format!("{at} must be at least {min} characters long"));
                }
                if let Some(max) = max_length.filter(|&m| chars > m) {
                    return Err(format!("{at} must be at most {max} characters long"));
                }
                Ok(())
            }
            Shape::Array { items, min_items, max_items } => {
                let Value::Array(values) = value else { return wrong_type("an array") };
                if let Some(min) = min_items.filter(|&m| values.len() < m) {
                    return Err(format!("{at} must have at least {min} items"));
                }
                if let Some(max) = max_items.filter(|&m| values.len() > m) {
                    return Err(format!("{at} must have at most {max} items"));
                }
                for (i, v) in values.iter().enumerate() {
                    at.push(Step::Index(i));
                    self.check_at(items, v, at)?;
                    at.pop();
                }
                Ok(())
            }
            Shape::Object { properties, required } => {
                let Value::Object(fields) = value else { return wrong_type("an object") };
                // The fields sent first, then those missing: a wrong value is the likelier news.
                for (name, s) in properties {
                    if let Some(v) = fields.get(name) {
                        at.push(Step::Field(name.clone()));
                        self.check_at(s, v, at)?;
                        at.pop();
                    }
                }
                if let Some(name) = required.iter().find(|name| !fields.contains_key(*name)) {
                    at.push(Step::Field(name.clone()));
                    let err = format!("{at} is required");
                    at.pop();
                    return Err(err);
                }
                Ok(())
            }
        }
    }
}

/// The range of an integer `format`; without one, an `i64`'s, as poem-openapi parses it.
fn format_range(format: Option<&str>) -> (i128, i128) {
    match format {
        Some("int8") => (i8::MIN.into(), i8::MAX.into()),
        Some("int16") => (i16::MIN.into(), i16::MAX.into()),
        Some("int32") => (i32::MIN.into(), i32::MAX.into()),
        Some("uint8") => (0, u8::MAX.into()),
        Some("uint16") => (0, u16::MAX.into()),
        Some("uint32") => (0, u32::MAX.into()),
        Some("uint64") => (0, u64::MAX.into()),
        _ => (i64::MIN.into(), i64::MAX.into()),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

enum Step {
    Field(String),
    Index(usize),
}

/// Where in the body a check is: `rows[0].number`, or the body itself.
#[derive(Default)]
struct Place(Vec<Step>);

impl Place {
    fn push(&mut self, step: Step) {
        self.0.push(step);
    }
    fn pop(&mut self) {
        self.0.pop();
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("the body");
        }
        f.write_str("`")?;
        for (i, step) in self.0.iter().enumerate() {
            match step {
                Step::Field(name) if i == 0 => f.write_str(name)?,
                Step::Field(name) => write!(f, ".{name}")?,
                Step::Index(n) => write!(f, "[{n}]")?,
            }
        }
        f.write_str("`")
    }
}
