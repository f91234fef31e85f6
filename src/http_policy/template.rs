//! Path templates of per-operation routes: `/conversation/v1/conversations/{conversationId}/authenticate`.
//! A `{name}` segment matches exactly one non-empty path segment; every other segment matches
//! itself. A template without parameters is an exact path.

/// One segment of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `{name}`: any one non-empty segment.
    Parameter(String),
}

/// A parsed `path` of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    text: String,
    segments: Vec<Segment>,
}

impl PathTemplate {
    /// Parses a template; the error says what is wrong (for `check-config`).
    pub fn parse(text: &str) -> Result<PathTemplate, String> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err("must start with \"/\"".to_owned());
        };
        let mut names = Vec::new();
        let segments = rest
            .split('/')
            .map(|segment| parse_segment(segment, &mut names))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PathTemplate {
            text: text.to_owned(),
            segments,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Segments that must match literally: among templates matching a path, more wins.
    pub fn literal_count(&self) -> usize {
        self.segments
            .iter()
            .filter(|segment| matches!(segment, Segment::Literal(_)))
            .count()
    }

    /// Whether `path` (the checked, forwarded path, without query) matches.
    pub fn matches(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        let mut parts = rest.split('/');
        let all_match = self
            .segments
            .iter()
            .all(|segment| match (segment, parts.next()) {
                (Segment::Literal(literal), Some(part)) => literal == part,
                (Segment::Parameter(_), Some(part)) => !part.is_empty(),
                (_, None) => false,
            });
        all_match && parts.next().is_none()
    }

    /// Whether some path matches both templates with neither having more literal segments:
    /// no rule would say which one serves it.
    pub fn is_ambiguous_with(&self, other: &PathTemplate) -> bool {
        self.segments.len() == other.segments.len()
            && self.literal_count() == other.literal_count()
            && self
                .segments
                .iter()
                .zip(&other.segments)
                .all(|pair| match pair {
                    (Segment::Literal(a), Segment::Literal(b)) => a == b,
                    _ => true,
                })
    }
}

fn parse_segment(segment: &str, names: &mut Vec<String>) -> Result<Segment, String> {
    if let Some(inner) = segment.strip_prefix('{') {
        let name = inner.strip_suffix('}').ok_or_else(|| {
            format!("segment {segment:?}: a parameter is a whole segment, \"{{name}}\"")
        })?;
        let valid =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(format!(
                "parameter {segment:?}: a name of letters, digits and \"_\""
            ));
        }
        if names.iter().any(|known| known == name) {
            return Err(format!("parameter {segment:?} appears twice"));
        }
        names.push(name.to_owned());
        return Ok(Segment::Parameter(name.to_owned()));
    }
    if segment.contains(['{', '}']) {
        return Err(format!(
            "segment {segment:?}: a parameter is a whole segment, \"{{name}}\""
        ));
    }
    // A literal segment is checked like a path prefix: canonical and unreserved characters.
    super::validate_prefix(&format!("/{segment}"))
        .map_err(|error| format!("segment {segment:?} {error}"))?;
    if segment.is_empty() {
        return Err("must not contain empty segments (\"//\" or a trailing \"/\")".to_owned());
    }
    Ok(Segment::Literal(segment.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ASAPP: &str = "/conversation/v1/conversations/{conversationId}/authenticate";

    #[test]
    fn a_parameter_is_one_non_empty_segment() {
        let template = PathTemplate::parse(ASAPP).unwrap();
        assert_eq!(template.literal_count(), 4);
        assert!(template.matches("/conversation/v1/conversations/c-1/authenticate"));
        for other in [
            "/conversation/v1/conversations//authenticate",
            "/conversation/v1/conversations/c-1/authenticate/x",
            "/conversation/v1/conversations/c-1/authenticate/",
            "/conversation/v1/conversations/c-1",
            "/conversation/v1/conversations/a/b/authenticate",
            "conversation/v1/conversations/c-1/authenticate",
        ] {
            assert!(!template.matches(other), "{other}");
        }
        let exact = PathTemplate::parse("/health").unwrap();
        assert!(exact.matches("/health") && !exact.matches("/health/x"));
    }

    #[test]
    fn bad_templates_say_why() {
        for bad in [
            "no-slash",
            "/a/{}",
            "/a/{x",
            "/a/x{y}",
            "/a/{x}/{x}",
            "/a/{x-y}",
            "/a//b",
            "/a/",
            "/a/../b",
            "/a/%2F",
        ] {
            assert!(PathTemplate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ambiguity_is_equal_literals_on_compatible_segments() {
        let parse = |text| PathTemplate::parse(text).unwrap();
        assert!(parse("/a/{x}/c").is_ambiguous_with(&parse("/a/b/{y}")));
        assert!(parse("/a/{x}").is_ambiguous_with(&parse("/a/{y}")));
        assert!(
            !parse("/a/b/c").is_ambiguous_with(&parse("/a/{x}/c")),
            "more literals win"
        );
        assert!(!parse("/a/{x}").is_ambiguous_with(&parse("/b/{x}")));
        assert!(!parse("/a/{x}").is_ambiguous_with(&parse("/a/{x}/c")));
    }
}
