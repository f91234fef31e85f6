//! Query and form parameters, read and removed under one rule, so that what an authenticator
//! reads is exactly what keyway removes before forwarding.
//!
//! The rule: names and values are `application/x-www-form-urlencoded`-decoded (`%XX`, `+` as
//! a space), and names compare without regard to ASCII case (`PassKey` is `passkey`,
//! `%75ser` is `user`). A JSON body's top-level string members are named the same way.

use std::borrow::Cow;

/// Whether a decoded parameter name is `name` under the rule.
pub fn is_named(decoded: &str, name: &str) -> bool {
    decoded.eq_ignore_ascii_case(name)
}

/// Every value of parameter `name` in an urlencoded string (a query or a form body), decoded.
pub fn values<'a>(encoded: &'a [u8], name: &'a str) -> impl Iterator<Item = Cow<'a, str>> {
    url::form_urlencoded::parse(encoded)
        .filter(move |(key, _)| is_named(key, name))
        .map(|(_, value)| value)
}

/// Every (name, value) pair of an urlencoded string, decoded.
pub fn pairs(encoded: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(encoded)
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect()
}

/// `encoded` without the pairs whose name is one of `names`, every other pair kept byte for
/// byte; `None` when there was nothing to remove. Works on bytes, as [`pairs`] reads them: a
/// body that is not UTF-8 still has its secrets removed.
pub fn without(encoded: &[u8], names: &[&str]) -> Option<Vec<u8>> {
    let removed = |pair: &[u8]| {
        let name = pair.split(|&b| b == b'=').next().unwrap_or_default();
        url::form_urlencoded::parse(name)
            .next()
            .is_some_and(|(decoded, _)| names.iter().any(|name| is_named(&decoded, name)))
    };
    let pairs = || encoded.split(|&b| b == b'&');
    if !pairs().any(removed) {
        return None;
    }
    let kept: Vec<&[u8]> = pairs().filter(|pair| !removed(pair)).collect();
    Some(kept.join(&b'&'))
}

/// A request's parameters: its query's, and a read body's (form fields, or a JSON body's
/// top-level string members).
#[derive(Clone, Copy)]
pub struct Parameters<'a> {
    query: &'a [u8],
    body: &'a [(String, String)],
}

/// A parameter given more than once: refused rather than guessed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repeated;

impl<'a> Parameters<'a> {
    pub fn new(query: Option<&'a str>, body: &'a [(String, String)]) -> Self {
        Parameters {
            query: query.unwrap_or("").as_bytes(),
            body,
        }
    }

    /// Every value of `name` in the query.
    pub fn in_query(&self, name: &'a str) -> Vec<Cow<'a, str>> {
        values(self.query, name).collect()
    }

    /// Every value of `name` in the body.
    pub fn in_body(&self, name: &str) -> Vec<&'a str> {
        self.body
            .iter()
            .filter(|(key, _)| is_named(key, name))
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// Every value of `name`, the query's first.
    pub fn all(&self, name: &'a str) -> Vec<Cow<'a, str>> {
        let mut found = self.in_query(name);
        found.extend(self.in_body(name).into_iter().map(Cow::Borrowed));
        found
    }

    /// The value of `name`, if given once; [`Repeated`] if given more than once.
    pub fn single(&self, name: &'a str) -> Result<Option<Cow<'a, str>>, Repeated> {
        let mut found = self.all(name).into_iter();
        match (found.next(), found.next()) {
            (value, None) => Ok(value),
            (Some(_), Some(_)) => Err(Repeated),
            (None, Some(_)) => unreachable!("an iterator yields in order"),
        }
    }

    /// Whether any name appears more than once (query and body together).
    pub fn any_repeated(&self) -> bool {
        let query = url::form_urlencoded::parse(self.query).map(|(name, _)| name);
        let body = self
            .body
            .iter()
            .map(|(name, _)| Cow::Borrowed(name.as_str()));
        let mut seen = std::collections::HashSet::new();
        !query
            .chain(body)
            .all(|name| seen.insert(name.to_ascii_lowercase()))
    }
}

/// Values, names and the body are credentials: `Debug` shows nothing of them.
impl std::fmt::Debug for Parameters<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Parameters(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_and_removing_follow_the_same_rule() {
        let query = "a=1&CodeVerifier=v%2D1&%63odeverifier=v2&x=a+b";
        let read = values(query.as_bytes(), "codeVerifier").collect::<Vec<_>>();
        assert_eq!(read, vec!["v-1", "v2"], "decoded, any case, any encoding");
        assert_eq!(
            without(query.as_bytes(), &["codeVerifier"]).as_deref(),
            Some(&b"a=1&x=a+b"[..]),
            "every pair that is read is removed, the rest kept byte for byte"
        );
        assert_eq!(without(b"a=1&b=2", &["codeVerifier"]), None);
        assert_eq!(without(b"user=t", &["user"]).as_deref(), Some(&b""[..]));
    }

    #[test]
    fn single_values_and_repeats() {
        let body = vec![("PassKey".to_owned(), "p".to_owned())];
        let parameters = Parameters::new(Some("apiversion=5.4&user=a"), &body);
        assert_eq!(parameters.single("passkey").unwrap().as_deref(), Some("p"));
        assert_eq!(
            parameters.single("APIVERSION").unwrap().as_deref(),
            Some("5.4")
        );
        assert_eq!(parameters.single("missing").unwrap(), None);
        assert!(!parameters.any_repeated());
        let twice = Parameters::new(Some("user=a&USER=b"), &[]);
        assert_eq!(twice.single("user"), Err(Repeated));
        assert!(twice.any_repeated());
        let split = Parameters::new(Some("passkey=a"), &body);
        assert_eq!(
            split.single("passkey"),
            Err(Repeated),
            "query and body together"
        );
        assert!(!format!("{split:?}").contains("passkey"));
    }
}
