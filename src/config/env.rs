//! `${VAR}` substitution in every string of the parsed TOML tree, before it is typed.

use super::ConfigProblem;
use toml::Value;

/// Replaces each `${NAME}` in every string value with the environment variable `NAME`.
///
/// Substitution runs on the untyped tree so that it applies to any key, and so that a missing
/// variable is reported with the key that asked for it. `$${` stays a literal `${`.
pub(super) fn substitute(
    root: &mut Value,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    walk(root, &mut String::new(), lookup, &mut problems);
    problems
}

fn walk(
    value: &mut Value,
    key: &mut String,
    lookup: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<ConfigProblem>,
) {
    match value {
        Value::String(text) => match expand(text, lookup) {
            Ok(expanded) => *text = expanded,
            Err(message) => problems.push(ConfigProblem::new(key.clone(), message)),
        },
        Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                let len = key.len();
                key.push_str(&format!("[{index}]"));
                walk(item, key, lookup, problems);
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
                walk(item, key, lookup, problems);
                key.truncate(len);
            }
        }
        _ => {}
    }
}

fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
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
            let name = &open[..end];
            if !is_variable_name(name) {
                return Err(format!("invalid environment variable name {name:?}"));
            }
            let value = lookup(name)
                .ok_or_else(|| format!("environment variable \"{name}\" is not set"))?;
            out.push_str(&value);
            rest = &open[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
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

    #[test]
    fn expands_embedded_and_escaped() {
        assert_eq!(expand("a-${SET}-b", &env).unwrap(), "a-value-b");
        assert_eq!(expand("$${SET}", &env).unwrap(), "${SET}");
        assert_eq!(expand("cost $5", &env).unwrap(), "cost $5");
    }

    #[test]
    fn missing_variable_is_named_with_its_key() {
        let mut root: Value = toml::from_str("[credentials.a]\nx = \"${MISSING}\"").unwrap();
        let problems = substitute(&mut root, &env);
        assert_eq!(problems.len(), 1);
        assert_eq!(
            problems[0].to_string(),
            "credentials.a.x: environment variable \"MISSING\" is not set"
        );
    }

    #[test]
    fn rejects_unterminated_and_bad_names() {
        assert!(expand("${OPEN", &env).is_err());
        assert!(expand("${1BAD}", &env).is_err());
    }
}
