//! keyway: a reverse-proxy authentication gateway on Pingora.
//!
//! One request, end to end (each step names the module that owns it):
//!
//! ```text
//! client -> listener -> request id -> route match -> authenticate -> mutate headers -> upstream
//!           (app)       (proxy::ctx)  (routing)      (auth)          (headers)         (upstream)
//!        <- error envelope for any failure, ours or the upstream's (error, proxy::respond)
//!           metrics + access log for every request (metrics, proxy::access_log)
//! ```
//!
//! `config` turns `config.toml` into plain settings; `build` wires them into the immutable
//! [`proxy::Runtime`] the proxy reads through one pointer; `app` runs the Pingora server.
//!
//! ## The layer rule
//!
//! A module imports (`crate::…`, outside its tests) only modules on lines below its own, never
//! one on its own line, so dependencies run one way and there is no cycle. The test
//! `layer_rule::imports_follow_the_layer_rule` reads this block and every file of `src/`.
//!
//! ```text
//! properties
//! app
//! reload
//! build
//! admin edge
//! proxy
//! routing
//! auth endpoints
//! headers upstream
//! error
//! api_keys converse exchange hosted_email
//! jwt
//! cache
//! store
//! metrics lifecycle listeners
//! logging
//! config
//! identity http_policy
//! ```
//!
//! - `properties` (tests and fuzzing builds only): the invariants of every parser of untrusted
//!   bytes, driven by proptest in `make test` and by the fuzz targets in `fuzz/`.
//! - `app`: the Pingora server (listeners, services, signals); `reload`: SIGHUP -> a new
//!   runtime swapped in; `build`: settings -> runtime.
//! - `admin`: `/metrics`, `/healthz`, `/readyz`; `edge`: client connections (how many, how long
//!   and how large a request head) before the proxy; `proxy`: the `ProxyHttp` hooks in phase
//!   order.
//! - `routing`: route matching over routes that hold resolved handles; `auth`: the
//!   authenticators and the any-of rule; `endpoints`: the built-in APIs.
//! - `headers`: strip and inject; `upstream`: peers and timeouts; `error`: the one error type,
//!   its envelope, and every domain error's mapping to it.
//! - `converse`, `exchange`, `hosted_email`: the seeds' services, each with its own errors;
//!   `api_keys`: partners' own key pairs;
//!   `jwt`: parsing, keys, JWKS and the verifier; `cache` and `store`: credentials in memory
//!   and on disk.
//! - Leaves: `metrics`, `lifecycle`, `listeners`, `logging`, `config` (raw -> settings),
//!   `identity` (the shared vocabulary) and `http_policy` (wire rules).

pub mod admin;
pub mod api_keys;
pub mod app;
pub mod auth;
pub mod build;
pub mod cache;
pub mod config;
pub mod converse;
pub mod edge;
pub mod endpoints;
pub mod error;
pub mod exchange;
pub mod headers;
pub mod hosted_email;
pub mod http_policy;
pub mod identity;
pub mod jwt;
pub mod lifecycle;
pub mod listeners;
pub mod logging;
pub mod metrics;
#[cfg(any(test, fuzzing))]
pub mod properties;
pub mod proxy;
pub mod reload;
pub mod routing;
pub mod store;
pub mod upstream;

#[cfg(test)]
mod layer_rule {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    /// The layers written in this file's docs, top first.
    fn layers() -> Vec<Vec<String>> {
        let text = include_str!("lib.rs");
        let after = text
            .split("## The layer rule")
            .nth(1)
            .expect("the rule is written");
        let block = after.split("```text").nth(1).expect("a text block");
        let block = block.split("```").next().expect("a closed block");
        block
            .lines()
            .map(|line| line.trim_start_matches("//!").split_whitespace())
            .map(|names| names.map(str::to_owned).collect::<Vec<_>>())
            .filter(|names| !names.is_empty())
            .collect()
    }

    fn rank(layers: &[Vec<String>], module: &str) -> Option<usize> {
        layers
            .iter()
            .position(|layer| layer.iter().any(|name| name == module))
    }

    /// Every `.rs` file of `src/` but the crate roots, with its top-level module.
    fn files(dir: &Path, top: Option<&str>, found: &mut Vec<(String, PathBuf)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
            if path.is_dir() {
                files(&path, Some(top.unwrap_or(&stem)), found);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                if top.is_none() && matches!(stem.as_str(), "lib" | "main") {
                    continue;
                }
                found.push((top.map_or(stem, str::to_owned), path));
            }
        }
    }

    /// The file without its test module (by convention the last item of a file).
    fn without_tests(text: &str) -> &str {
        text.find("#[cfg(test)]\nmod tests")
            .map_or(text, |at| &text[..at])
    }

    /// The top-level modules named by `crate::` paths in code (not comments).
    pub(super) fn imported_modules(code: &str) -> BTreeSet<String> {
        let code: String = code
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut modules = BTreeSet::new();
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            match rest.strip_prefix('{') {
                // `use crate::{a::b, c::{d, e}};`, over one line or several
                Some(group) => modules.extend(top_level_items(group).filter_map(first_ident)),
                None => modules.extend(first_ident(rest)),
            }
        }
        modules
    }

    /// The comma-separated items of a `{...}` group (after its `{`), nested groups kept whole.
    fn top_level_items(group: &str) -> impl Iterator<Item = &str> {
        let mut depth = 0usize;
        let mut end = group.len();
        let mut cuts = vec![0];
        for (index, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    end = index;
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => cuts.push(index + 1),
                _ => {}
            }
        }
        cuts.push(end + 1);
        let group = &group[..end];
        cuts.windows(2)
            .map(move |pair| &group[pair[0]..(pair[1] - 1).min(group.len())])
            .collect::<Vec<_>>()
            .into_iter()
    }

    fn first_ident(text: &str) -> Option<String> {
        let ident: String = text
            .trim()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        (!ident.is_empty()).then_some(ident)
    }

    /// Every breach of the rule in `src/`: (module, imported module).
    fn breaches() -> Vec<String> {
        let layers = layers();
        let mut found = Vec::new();
        files(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            None,
            &mut found,
        );
        let mut breaches = Vec::new();
        for (module, path) in found {
            let Some(own) = rank(&layers, &module) else {
                breaches.push(format!(
                    "{module} ({}) is not in the layer rule",
                    path.display()
                ));
                continue;
            };
            let text = std::fs::read_to_string(&path).unwrap();
            for imported in imported_modules(without_tests(&text)) {
                if imported == module {
                    continue;
                }
                match rank(&layers, &imported) {
                    Some(theirs) if theirs > own => {}
                    _ => breaches.push(format!(
                        "{} imports crate::{imported}, which is not below {module}",
                        path.display()
                    )),
                }
            }
        }
        breaches
    }

    #[test]
    fn imports_follow_the_layer_rule() {
        let breaches = breaches();
        assert!(breaches.is_empty(), "{}", breaches.join("\n"));
    }

    #[test]
    fn the_rule_names_every_module_once() {
        let layers = layers();
        let named: Vec<&String> = layers.iter().flatten().collect();
        let unique: BTreeSet<&String> = named.iter().copied().collect();
        assert_eq!(
            named.len(),
            unique.len(),
            "a module on two lines: {layers:?}"
        );
        assert_eq!(
            rank(&layers, "properties"),
            Some(0),
            "tests sit above everything"
        );
        assert_eq!(rank(&layers, "app"), Some(1));
        assert!(rank(&layers, "identity") > rank(&layers, "config"));
    }

    #[test]
    fn crate_paths_are_found_in_every_form() {
        let code = "use crate::a::B;\nuse crate::{b::C, c};\nlet x = crate::d::f();\n// crate::e\nuse crate::{\n    f::{G, H},\n    i,\n};\n";
        let found: Vec<String> = imported_modules(code).into_iter().collect();
        assert_eq!(found, ["a", "b", "c", "d", "f", "i"]);
    }
}
