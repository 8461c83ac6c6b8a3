//! A spec path (`/admin/v1/orgs/{org_id}`) as a pattern that request paths are matched against
//! the way poem routes them: a `{parameter}` takes any one non-empty segment, and where several
//! templates match, the one with more literal segments wins.

#[derive(Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// A path parameter (`{org_id}` in the spec): any one segment.
    Param,
}

#[derive(Debug)]
pub struct PathTemplate {
    segments: Vec<Segment>,
}

impl PathTemplate {
    pub fn parse(path: &str) -> Self {
        let segments = path
            .split('/')
            .map(|s| if s.starts_with('{') && s.ends_with('}') { Segment::Param } else { Segment::Literal(s.into()) })
            .collect();
        Self { segments }
    }

    fn matches(&self, parts: &[&str]) -> bool {
        self.segments.len() == parts.len()
            && self.segments.iter().zip(parts).all(|(s, p)| match s {
                Segment::Literal(l) => l == p,
                Segment::Param => !p.is_empty(),
            })
    }

    fn literals(&self) -> usize {
        self.segments.iter().filter(|s| matches!(s, Segment::Literal(_))).count()
    }
}

/// The item whose template the request path matches best, as routing picks it.
pub fn best_match<'a, T>(items: impl IntoIterator<Item = (&'a PathTemplate, T)>, path: &str) -> Option<T> {
    let parts: Vec<&str> = path.split('/').collect();
    items.into_iter().filter(|(t, _)| t.matches(&parts)).max_by_key(|(t, _)| t.literals()).map(|(_, item)| item)
}
