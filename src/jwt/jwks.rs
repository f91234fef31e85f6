//! Identity providers' verification keys: fetched, cached, rotated (a Pingora BackgroundService).
//!
//! Each provider's JWK set is fetched at start-up (`/readyz` waits for it) and refreshed on its
//! `Cache-Control: max-age` (bounded by the provider's min/max). A token with an unknown `kid`
//! triggers a refetch, at most once per cooldown per provider. A failed or garbage fetch (HTML,
//! invalid JSON, an empty or oversized set) keeps the last good keys, for at most `max_stale`.
//! Only the configured URL is ever fetched: token headers (`jku`, `x5u`, …) are never used.

use super::keys::KeySet;
use crate::config::files::read_named_file;
use crate::config::identity::{JwksTiming, KeySource, ProviderSettings};
use crate::lifecycle::ReadinessCheck;
use crate::metrics::Metrics;
use async_trait::async_trait;
use jsonwebtoken::Algorithm;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{info, warn};

/// Largest JWKS or discovery document accepted.
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;
/// Retry delay after a failed fetch.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// The keys of one provider, static or fetched.
pub struct ProviderKeys {
    label: String,
    source: Source,
}

enum Source {
    Static(Arc<KeySet>),
    Remote(Box<Remote>),
}

struct Remote {
    /// The JWKS URL, or the discovery document that names it.
    location: Location,
    algorithms: Vec<Algorithm>,
    timing: JwksTiming,
    client: reqwest::Client,
    metrics: Arc<Metrics>,
    state: RwLock<Fetched>,
    last_kid_refetch: Mutex<Option<Instant>>,
    fetching: tokio::sync::Mutex<()>,
}

enum Location {
    Jwks(String),
    Discovery {
        url: String,
        jwks: Mutex<Option<String>>,
    },
}

#[derive(Default)]
struct Fetched {
    keys: Option<Arc<KeySet>>,
    last_success: Option<Instant>,
}

impl ProviderKeys {
    /// Builds the key source; static keys are read now (a bad file fails start-up).
    pub fn new(settings: &ProviderSettings, metrics: Arc<Metrics>) -> Result<Self, String> {
        let static_keys = |keys: KeySet| Source::Static(Arc::new(keys));
        let source = match &settings.keys {
            KeySource::Secret(secret) => static_keys(KeySet::from_secret(
                secret.expose().as_bytes(),
                &settings.algorithms,
            )),
            KeySource::File { path } => {
                let document = read_named_file(path)
                    .map_err(|error| format!("{}: {error}", path.display()))?;
                static_keys(
                    KeySet::from_file_contents(&document, &settings.algorithms)
                        .map_err(|error| format!("{}: {error}", path.display()))?,
                )
            }
            KeySource::Jwks { uri } => Source::Remote(Box::new(Remote::new(
                Location::Jwks(uri.clone()),
                settings,
                metrics,
            ))),
            KeySource::Discovery { url } => {
                let location = Location::Discovery {
                    url: url.clone(),
                    jwks: Mutex::new(None),
                };
                Source::Remote(Box::new(Remote::new(location, settings, metrics)))
            }
        };
        Ok(ProviderKeys {
            label: settings.label(),
            source,
        })
    }

    /// The keys to verify with now; `None` when none were ever fetched or they are too stale.
    pub fn current(&self) -> Option<Arc<KeySet>> {
        match &self.source {
            Source::Static(keys) => Some(keys.clone()),
            Source::Remote(remote) => remote.current(),
        }
    }

    /// A token named a `kid` we do not have: refetch, at most once per cooldown. True when
    /// new keys were fetched.
    pub async fn refetch_for_unknown_kid(&self) -> bool {
        match &self.source {
            Source::Static(_) => false,
            Source::Remote(remote) => remote.cooldown_refetch(&self.label).await,
        }
    }

    /// Fetches now; returns when to refresh next. Static keys never refresh.
    async fn refresh(&self) -> Option<Duration> {
        match &self.source {
            Source::Static(_) => None,
            Source::Remote(remote) => Some(remote.refresh(&self.label).await),
        }
    }
}

impl ReadinessCheck for ProviderKeys {
    fn is_ready(&self) -> bool {
        self.current().is_some()
    }
}

impl Remote {
    fn new(location: Location, settings: &ProviderSettings, metrics: Arc<Metrics>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(settings.jwks.fetch_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a TLS-capable HTTP client builds");
        Remote {
            location,
            algorithms: settings.algorithms.clone(),
            timing: settings.jwks.clone(),
            client,
            metrics,
            state: RwLock::default(),
            last_kid_refetch: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn current(&self) -> Option<Arc<KeySet>> {
        let state = self.state.read().expect("jwks state lock");
        let fresh_enough = state
            .last_success
            .is_some_and(|at| at.elapsed() <= self.timing.max_stale);
        state.keys.clone().filter(|_| fresh_enough)
    }

    async fn cooldown_refetch(&self, label: &str) -> bool {
        {
            let mut last = self.last_kid_refetch.lock().expect("refetch lock");
            if last.is_some_and(|at| at.elapsed() < self.timing.refetch_cooldown) {
                return false;
            }
            *last = Some(Instant::now());
        }
        info!(provider = label, "unknown kid: refetching the JWKS");
        self.fetch_and_store(label).await.is_ok()
    }

    async fn refresh(&self, label: &str) -> Duration {
        match self.fetch_and_store(label).await {
            Ok(max_age) => max_age
                .unwrap_or(self.timing.refresh)
                .clamp(self.timing.min_refresh, self.timing.max_refresh),
            Err(()) => RETRY_AFTER_FAILURE.min(self.timing.min_refresh),
        }
    }

    /// One fetch (concurrent callers wait for it); on success the keys are replaced.
    async fn fetch_and_store(&self, label: &str) -> Result<Option<Duration>, ()> {
        let _one_at_a_time = self.fetching.lock().await;
        let result = self.fetch().await;
        self.metrics.observe_jwks_refresh(label, result.is_ok());
        match result {
            Ok((keys, max_age)) => {
                let mut state = self.state.write().expect("jwks state lock");
                state.keys = Some(Arc::new(keys));
                state.last_success = Some(Instant::now());
                Ok(max_age)
            }
            Err(error) => {
                warn!(provider = label, %error, "JWKS fetch failed; keeping the last good keys");
                Err(())
            }
        }
    }

    async fn fetch(&self) -> Result<(KeySet, Option<Duration>), String> {
        let url = self.jwks_url().await?;
        let (document, max_age) = get_document(&self.client, &url).await?;
        let keys = KeySet::from_jwks(&document, &self.algorithms)?;
        Ok((keys, max_age))
    }

    async fn jwks_url(&self) -> Result<String, String> {
        match &self.location {
            Location::Jwks(url) => Ok(url.clone()),
            Location::Discovery { url, jwks } => {
                if let Some(known) = jwks.lock().expect("discovery lock").clone() {
                    return Ok(known);
                }
                let (document, _) = get_document(&self.client, url).await?;
                let value: serde_json::Value = serde_json::from_slice(&document)
                    .map_err(|_| "discovery document is not JSON".to_owned())?;
                let found = value
                    .get("jwks_uri")
                    .and_then(serde_json::Value::as_str)
                    .filter(|uri| uri.starts_with("https://") || uri.starts_with("http://"))
                    .ok_or_else(|| "discovery document has no http(s) jwks_uri".to_owned())?
                    .to_owned();
                *jwks.lock().expect("discovery lock") = Some(found.clone());
                Ok(found)
            }
        }
    }
}

/// GETs a document of at most `MAX_DOCUMENT_BYTES`; returns it and its `max-age`.
async fn get_document(
    client: &reqwest::Client,
    url: &str,
) -> Result<(Vec<u8>, Option<Duration>), String> {
    let mut response = client
        .get(url)
        .send()
        .await
        .map_err(|error| format!("request failed: {error}"))?;
    if !response.status().is_success() {
        return Err(format!("status {}", response.status()));
    }
    let max_age = response
        .headers()
        .get(http::header::CACHE_CONTROL)
        .and_then(|value| value.to_str().ok())
        .and_then(max_age);
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| format!("body failed: {error}"))?
    {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(format!("document larger than {MAX_DOCUMENT_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, max_age))
}

fn max_age(cache_control: &str) -> Option<Duration> {
    cache_control
        .split(',')
        .filter_map(|directive| directive.trim().strip_prefix("max-age="))
        .find_map(|seconds| seconds.trim_matches('"').parse().ok())
        .map(Duration::from_secs)
}

/// Fetches every remote provider's keys at start-up and keeps them refreshed.
/// Every identity provider's keys, kept across reloads: a fetched provider whose settings did
/// not change keeps its keys and its refresh schedule (a provider read from a file or a secret
/// is read again, so a rotated key file takes effect on reload).
pub struct ProviderRegistry {
    metrics: Arc<Metrics>,
    current: Mutex<Vec<(ProviderSettings, Arc<ProviderKeys>)>>,
    /// Providers to refresh from now on, for [`JwksService`].
    fresh: mpsc::UnboundedSender<Weak<ProviderKeys>>,
    fresh_receiver: Mutex<Option<mpsc::UnboundedReceiver<Weak<ProviderKeys>>>>,
}

impl ProviderRegistry {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        let (fresh, receiver) = mpsc::unbounded_channel();
        ProviderRegistry {
            metrics,
            current: Mutex::new(Vec::new()),
            fresh,
            fresh_receiver: Mutex::new(Some(receiver)),
        }
    }

    /// The keys for `providers`: those in use when unchanged and fetched, else new ones.
    /// Nothing changes until [`ProviderRegistry::commit`].
    pub fn prepare(
        &self,
        providers: &[ProviderSettings],
    ) -> Result<Vec<Arc<ProviderKeys>>, String> {
        let current = self.current.lock().expect("providers lock");
        providers
            .iter()
            .map(|settings| {
                let kept = current.iter().find(|(known, keys)| {
                    known == settings && matches!(keys.source, Source::Remote(_))
                });
                match kept {
                    Some((_, keys)) => Ok(keys.clone()),
                    None => ProviderKeys::new(settings, self.metrics.clone())
                        .map(Arc::new)
                        .map_err(|error| {
                            format!("identity provider {}: {error}", settings.label())
                        }),
                }
            })
            .collect()
    }

    /// Makes `keys` (from [`ProviderRegistry::prepare`]) the providers in use: new ones start
    /// refreshing; those left stop once no runtime holds them.
    pub fn commit(&self, providers: &[ProviderSettings], keys: &[Arc<ProviderKeys>]) {
        let mut current = self.current.lock().expect("providers lock");
        for fresh in keys {
            if !current.iter().any(|(_, known)| Arc::ptr_eq(known, fresh)) {
                let _ = self.fresh.send(Arc::downgrade(fresh));
            }
        }
        *current = providers
            .iter()
            .cloned()
            .zip(keys.iter().cloned())
            .collect();
    }
}

/// Refreshes every provider of the registry, each on its own schedule, for as long as it is in
/// use.
pub struct JwksService {
    pub registry: Arc<ProviderRegistry>,
}

#[async_trait]
impl BackgroundService for JwksService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(mut fresh) = self
            .registry
            .fresh_receiver
            .lock()
            .expect("receiver lock")
            .take()
        else {
            return;
        };
        loop {
            tokio::select! {
                provider = fresh.recv() => match provider {
                    Some(provider) => {
                        tokio::spawn(refresh_while_in_use(provider, shutdown.clone()));
                    }
                    None => return,
                },
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Refreshes one provider until it is no longer in use (or keyway stops).
async fn refresh_while_in_use(provider: Weak<ProviderKeys>, mut shutdown: ShutdownWatch) {
    loop {
        let Some(keys) = provider.upgrade() else {
            return;
        };
        let Some(delay) = keys.refresh().await else {
            return;
        };
        drop(keys);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_max_age() {
        assert_eq!(
            max_age("public, max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(max_age("no-cache"), None);
        assert_eq!(max_age("max-age=abc"), None);
    }
}
