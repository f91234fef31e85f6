//! `${VAR}` and `${file:PATH}` substitution in every string of the parsed TOML tree, before it
//! is typed.

use super::ConfigProblem;
use std::path::Path;
use toml::Value;

/// Where substituted values come from: the environment and secret files.
pub(super) struct Sources<'a> {
    pub lookup: &'a dyn Fn(&str) -> Option<String>,
    /// Relative `${file:...}` paths resolve here (the config file's directory).
    pub base: &'a Path,
}

/// Replaces each `${NAME}` in every string value with the environment variable `NAME`, and
/// each `${file:PATH}` with the content of that file, its trailing line break trimmed (secrets
/// mounted by Kubernetes or a Vault agent; read again at every reload).
///
/// Substitution runs on the untyped tree so that it applies to any key, and so that a missing
/// variable or unreadable file is reported with the key that asked for it (never with any
/// content). `$${` stays a literal `${`.
pub(super) fn substitute(root: &mut Value, sources: &Sources<'_>) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    walk(root, &mut String::new(), sources, &mut problems);
    problems
}

fn walk(
    value: &mut Value,
    key: &mut String,
    sources: &Sources<'_>,
    problems: &mut Vec<ConfigProblem>,
) {
    match value {
        Value::String(text) => match expand(text, sources) {
            Ok(expanded) => *text = expanded,
            Err(message) => problems.push(ConfigProblem::new(key.clone(), message)),
        },
        Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                let len = key.len();
                key.push_str(&format!("[{index}]"));
                walk(item, key, sources, problems);
                key.truncate(len);
            }
        }
        Value::Table(table) => {
            for (name, item) in table.iter_mut() {
                let len = key.len();
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(name);
                walk(item, key, sources, problems);
                key.truncate(len);
            }
        }
        _ => {}
    }
}

fn expand(text: &str, sources: &Sources<'_>) -> Result<String, String> {
    if !text.contains('$') {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(escaped) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = escaped;
        } else if let Some(open) = after.strip_prefix("${") {
            let end = open
                .find('}')
                .ok_or_else(|| "unterminated \"${\" in value".to_owned())?;
            out.push_str(&resolve(&open[..end], sources)?);
            rest = &open[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The value of one `${...}`: a file's content or an environment variable.
fn resolve(name: &str, sources: &Sources<'_>) -> Result<String, String> {
    if let Some(path) = name.strip_prefix("file:") {
        return read_secret_file(&sources.base.join(path));
    }
    if !is_variable_name(name) {
        return Err(format!("invalid environment variable name {name:?}"));
    }
    (sources.lookup)(name).ok_or_else(|| format!("environment variable \"{name}\" is not set"))
}

/// A secret file's content without its trailing line break; the error names the file only.
fn read_secret_file(path: &Path) -> Result<String, String> {
    let text = super::files::read_named_file(path)
        .and_then(|bytes| {
            String::from_utf8(bytes).map_err(|_| std::io::Error::other("it is not UTF-8 text"))
        })
        .map_err(|error| format!("cannot read secret file {}: {error}", path.display()))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "SET").then(|| "value".to_owned())
    }

    fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
        super::expand(
            text,
            &Sources {
                lookup,
                base: Path::new("/nonexistent"),
            },
        )
    }

    #[test]
    fn expands_embedded_and_escaped() {
        assert_eq!(expand("a-${SET}-b", &env).unwrap(), "a-value-b");
        assert_eq!(expand("$${SET}", &env).unwrap(), "${SET}");
        assert_eq!(expand("cost $5", &env).unwrap(), "cost $5");
    }

    #[test]
    fn missing_variable_is_named_with_its_key() {
        let mut root: Value = toml::from_str("[credentials.a]\nx = \"${MISSING}\"").unwrap();
        let sources = Sources {
            lookup: &env,
            base: Path::new("."),
        };
        let problems = substitute(&mut root, &sources);
        assert_eq!(problems.len(), 1);
        assert_eq!(
            problems[0].to_string(),
            "credentials.a.x: environment variable \"MISSING\" is not set"
        );
    }

    #[test]
    fn secret_files_are_read_trimmed_and_never_quoted_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), "s3cret-value\n").unwrap();
        std::fs::write(dir.path().join("binary"), [0xff, 0xfe, b's']).unwrap();
        let sources = Sources {
            lookup: &env,
            base: dir.path(),
        };
        assert_eq!(
            super::expand("${file:secret}", &sources).unwrap(),
            "s3cret-value"
        );
        let absolute = format!("x-${{file:{}}}", dir.path().join("secret").display());
        assert_eq!(
            super::expand(&absolute, &sources).unwrap(),
            "x-s3cret-value"
        );
        let missing = super::expand("${file:missing}", &sources).unwrap_err();
        assert!(missing.starts_with("cannot read secret file "), "{missing}");
        assert!(missing.contains("missing"), "{missing}");
        let binary = super::expand("${file:binary}", &sources).unwrap_err();
        assert!(binary.ends_with("it is not UTF-8 text"), "{binary}");
    }

    #[test]
    fn rejects_unterminated_and_bad_names() {
        assert!(expand("${OPEN", &env).is_err());
        assert!(expand("${1BAD}", &env).is_err());
    }
}
