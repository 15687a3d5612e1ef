//! HTTP to one registry: the distribution API's requests with the token or
//! Basic authentication the registry asks for in its 401 answer, using the
//! credentials `hutch login` stored (or none).

use super::auth::{self, Challenge};
use super::credentials::{self, Credentials};
use super::error::RegistryError;
use anyhow::{Context, Result, bail};
use std::sync::Mutex;
use std::time::Duration;
use ureq::http::Response;

/// What a response body is read as.
pub type Body = ureq::Body;

pub struct Client {
    agent: ureq::Agent,
    /// `https://host[:port]` or, with `tls_verify` off and a server that
    /// does not speak TLS, `http://host[:port]`.
    base: Mutex<String>,
    tls_verify: bool,
    /// The registry as the user names it (`docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// The `Authorization` header that the last challenge earned.
    authorization: Mutex<Option<String>>,
    /// From `hutch login` (auth.json) or given for a login check.
    creds: Option<Credentials>,
}

/// The host that serves a registry name (Docker Hub's API is elsewhere).
fn api_host(registry: &str) -> &str {
    if registry == "docker.io" {
        "registry-1.docker.io"
    } else {
        registry
    }
}

impl Client {
    /// A client with the credentials stored for `registry` (if any).
    pub fn new(registry: &str, tls_verify: bool) -> Result<Client> {
        let creds = credentials::lookup(registry)?;
        Ok(Client::with_credentials(registry, tls_verify, creds))
    }

    pub fn with_credentials(
        registry: &str,
        tls_verify: bool,
        creds: Option<Credentials>,
    ) -> Client {
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .disable_verification(!tls_verify)
            .build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            // A body that stalls becomes a broken download, which a blob
            // download resumes (see `download`); the limit is per response.
            .timeout_recv_body(Some(body_timeout()))
            .user_agent(concat!("hutch/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Client {
            agent,
            base: Mutex::new(format!("https://{}", api_host(registry))),
            tls_verify,
            registry: registry.to_owned(),
            authorization: Mutex::new(None),
            creds,
        }
    }

    fn base(&self) -> String {
        self.base.lock().map(|b| b.clone()).unwrap_or_default()
    }

    fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Response<Body>, ureq::Error> {
        self.send_body(method, url, headers, ())
    }

    /// [`send`](Self::send), again after a pause when the connection fails
    /// or the registry answers 429/502/503/504 (busy or restarting), up to
    /// [`RETRIES`] times.
    fn send_retrying(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Response<Body>, ureq::Error> {
        let mut attempt = 0;
        loop {
            let result = self.send(method, url, headers);
            let wait = match &result {
                Ok(r) if transient_status(r.status().as_u16()) => {
                    retry_after(r).unwrap_or_else(|| backoff(attempt))
                }
                Err(e) if transient_error(e) => backoff(attempt),
                _ => return result,
            };
            if attempt >= RETRIES {
                return result;
            }
            tracing::debug!("{method} {url}: transient failure, retrying in {wait:?}");
            std::thread::sleep(wait);
            attempt += 1;
        }
    }

    /// One request with the non-empty `headers` and the current
    /// authorization (unless `headers` has one).
    fn send_body(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: impl ureq::AsSendBody,
    ) -> Result<Response<Body>, ureq::Error> {
        let explicit = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"));
        let auth = match explicit {
            true => None,
            false => self.authorization.lock().ok().and_then(|a| a.clone()),
        };
        let mut req = ureq::http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            if !v.is_empty() {
                req = req.header(*k, *v);
            }
        }
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let req = req.body(body).map_err(ureq::Error::from)?;
        self.agent.run(req)
    }

    /// The request again with the `authorization` a challenge earned, which
    /// then becomes the one later requests use. It is sent explicitly:
    /// another thread may set a different one (for another scope) meanwhile.
    fn retry_authorized(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        authorization: String,
    ) -> Result<Response<Body>> {
        let mut with_auth = headers.to_vec();
        with_auth.push(("Authorization", &authorization));
        let resp = self
            .send_retrying(method, url, &with_auth)
            .map_err(|e| self.transport_error(e, url))?;
        if let Ok(mut a) = self.authorization.lock() {
            *a = Some(authorization.clone());
        }
        Ok(resp)
    }

    /// The error for a request to `url` that failed before any answer.
    fn transport_error(&self, e: ureq::Error, url: &str) -> anyhow::Error {
        anyhow::anyhow!(describe_transport(&e, &self.registry, url))
    }

    /// A request with a body to `location` (a path or the absolute URL a
    /// registry handed out), with the authorization an earlier
    /// [`request`](Self::request) earned.
    pub fn upload(
        &self,
        method: &str,
        location: &str,
        content_type: &str,
        length: Option<u64>,
        body: impl ureq::AsSendBody,
    ) -> Result<Response<Body>> {
        let url = if location.starts_with("http://") || location.starts_with("https://") {
            location.to_owned()
        } else {
            format!("{}{location}", self.base())
        };
        let length = length.map(|l| l.to_string()).unwrap_or_default();
        let headers = [("Content-Type", content_type), ("Content-Length", &length)];
        self.send_body(method, &url, &headers, body)
            .map_err(|e| match is_name_resolution(&e) {
                true => self.transport_error(e, &url),
                false => {
                    anyhow::Error::new(e).context(format!("sending to registry {}", self.registry))
                }
            })
    }

    /// GET (or HEAD, or a bodyless POST) `path` (`/v2/...`), answering one
    /// authentication challenge for `scope`. Any status comes back;
    /// transport errors are errors (after retries).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        accept: &str,
        scope: &str,
    ) -> Result<Response<Body>> {
        self.request_with(method, path, &[("Accept", accept)], scope)
    }

    /// [`request`](Self::request) with other headers (`Range`).
    pub fn request_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        scope: &str,
    ) -> Result<Response<Body>> {
        let mut url = format!("{}{path}", self.base());
        // An https attempt that may be answered by a plain-HTTP server is
        // not retried: its failure is the answer.
        let probing = !self.tls_verify && url.starts_with("https://");
        let first = if probing {
            self.send(method, &url, headers)
        } else {
            self.send_retrying(method, &url, headers)
        };
        let mut resp = match first {
            Ok(r) => r,
            // With --tls-verify=false a registry may speak plain HTTP, as
            // Podman allows.
            Err(e) if is_name_resolution(&e) => return Err(self.transport_error(e, &url)),
            Err(e) if probing => {
                let plain = format!("http://{}", api_host(&self.registry));
                url = format!("{plain}{path}");
                let r = self.send_retrying(method, &url, headers).with_context(|| {
                    format!("connecting to registry {} (https: {e})", self.registry)
                })?;
                if let Ok(mut b) = self.base.lock() {
                    *b = plain;
                }
                r
            }
            Err(e) => return Err(self.transport_error(e, &url)),
        };
        if resp.status().as_u16() == 401 {
            let challenge = resp
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .and_then(auth::parse);
            match challenge {
                Some(Challenge::Bearer {
                    realm,
                    service,
                    scope: asked,
                }) => {
                    // What the registry asks for and what this client will
                    // need (push, a mount's source): parallel uploads share
                    // the token, so each must carry every scope.
                    let mut scopes: Vec<&str> = Vec::new();
                    for sc in asked.as_deref().unwrap_or("").split_whitespace() {
                        scopes.push(sc);
                    }
                    for sc in scope.split_whitespace() {
                        if !scopes.contains(&sc) {
                            scopes.push(sc);
                        }
                    }
                    let token = self.token(&realm, service.as_deref(), &scopes.join(" "))?;
                    resp =
                        self.retry_authorized(method, &url, headers, format!("Bearer {token}"))?;
                }
                Some(Challenge::Basic) => {
                    let Some(c) = &self.creds else {
                        return Err(RegistryError::LoginRequired {
                            registry: self.registry.clone(),
                        }
                        .into());
                    };
                    resp = self.retry_authorized(method, &url, headers, c.basic_header())?;
                }
                None => bail!(
                    "registry {} refused access (401) without an authentication scheme hutch knows",
                    self.registry
                ),
            }
        }
        if resp.status().as_u16() == 401 {
            let registry = self.registry.clone();
            return Err(match &self.creds {
                Some(c) => RegistryError::CredentialsRefused {
                    registry,
                    username: c.username.clone(),
                },
                None => RegistryError::AnonymousRefused { registry },
            }
            .into());
        }
        Ok(resp)
    }

    /// A token from the registry's token service (with the credentials,
    /// when there are some).
    fn token(&self, realm: &str, service: Option<&str>, scope: &str) -> Result<String> {
        let mut url = realm.to_owned();
        let mut sep = if url.contains('?') { '&' } else { '?' };
        // One `scope` parameter per scope: a push that mounts a blob from
        // another repository asks for two.
        let params = service
            .map(|v| ("service", v))
            .into_iter()
            .chain(scope.split_whitespace().map(|v| ("scope", v)));
        for (k, v) in params {
            url.push(sep);
            url.push_str(k);
            url.push('=');
            url.push_str(&encode(v));
            sep = '&';
        }
        let what = || {
            format!(
                "getting a token for registry {} ({scope}) from {realm}",
                self.registry
            )
        };
        let mut req = self.agent.get(&url);
        if let Some(c) = &self.creds {
            req = req.header("Authorization", c.basic_header());
        }
        let resp = req.call().map_err(|e| match is_name_resolution(&e) {
            true => self.transport_error(e, realm),
            false => anyhow::Error::new(e).context(what()),
        })?;
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            bail!(
                "{}: the credentials were refused (HTTP {status}): `hutch login {}`",
                what(),
                self.registry
            );
        }
        if status != 200 {
            bail!("{}: the token service answered HTTP {status}", what());
        }
        let bytes = resp
            .into_body()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .with_context(what)?;
        let body: serde_json::Value = serde_json::from_slice(&bytes).with_context(what)?;
        body.get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_owned)
            .with_context(|| format!("{}: the answer has no token", what()))
    }
}

/// How long one response body may take: 60 s, or
/// `HUTCH_BODY_TIMEOUT_SECS` (for tests, and links where a reconnect a
/// minute is too many).
fn body_timeout() -> Duration {
    let secs = std::env::var("HUTCH_BODY_TIMEOUT_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(60);
    Duration::from_secs(secs)
}

/// How many times a failed request is tried again.
pub const RETRIES: u32 = 3;

/// The pause before retry `attempt` (0-based): 250 ms, doubling.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250 << attempt.min(5))
}

/// Statuses that mean "later" rather than "no".
fn transient_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// Transport failures worth another try (not TLS, DNS or protocol errors,
/// which would fail the same way again).
fn transient_error(e: &ureq::Error) -> bool {
    !is_name_resolution(e)
        && matches!(
            e,
            ureq::Error::Io(_) | ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed
        )
}

/// Whether `e` is a failure to resolve the host name: ureq's own "host
/// not found" (no address), or the resolver's error, which the standard
/// library reports as an I/O error with this text.
fn is_name_resolution(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::HostNotFound => true,
        ureq::Error::Io(io) => io
            .to_string()
            .starts_with("failed to lookup address information"),
        _ => false,
    }
}

/// The host (without port) of an `http(s)://host[:port]/...` URL.
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = host.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    host.split(':').next().unwrap_or(host)
}

/// What a failed connection to `url` means for the user, and what to do.
fn describe_transport(e: &ureq::Error, registry: &str, url: &str) -> String {
    if is_name_resolution(e) {
        let host = url_host(url);
        return format!(
            "cannot reach registry {registry}: name resolution of {host} failed ({e}); \
             check the name and the network. Without a network, bring images in from \
             files: `hutch load ARCHIVE` (from `hutch save`, `podman save` or \
             `docker save`) or `hutch import ROOTFS.tar NAME`"
        );
    }
    format!(
        "connecting to registry {registry}: {e} (for a registry without TLS or with a \
         self-signed certificate: --tls-verify=false, or `insecure = true` for it in {})",
        super::config::path()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "~/.config/hutch/registries.toml".into())
    )
}

/// A `Retry-After: SECONDS` answer, capped at 10 s.
fn retry_after(resp: &Response<Body>) -> Option<Duration> {
    let secs: u64 = resp
        .headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs.min(10)))
}

/// Percent-encode a query value.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            super::encode("repository:library/busybox:pull,push"),
            "repository:library/busybox:pull%2Cpush"
        );
        assert_eq!(super::encode("a b&c"), "a%20b%26c");
    }

    #[test]
    fn a_name_that_does_not_resolve_says_so_and_points_to_load_and_import() {
        use std::net::ToSocketAddrs;
        // The resolver's own error, as ureq passes it on (no network needed:
        // `.invalid` never resolves).
        let io = ("nonexistent.invalid", 443).to_socket_addrs().unwrap_err();
        for e in [ureq::Error::Io(io), ureq::Error::HostNotFound] {
            assert!(super::is_name_resolution(&e), "{e}");
            assert!(!super::transient_error(&e), "{e}: not retried");
            let m = super::describe_transport(
                &e,
                "nonexistent.invalid",
                "https://nonexistent.invalid/v2/",
            );
            assert!(
                m.contains("name resolution of nonexistent.invalid failed"),
                "{m}"
            );
            assert!(
                m.contains("hutch load") && m.contains("hutch import"),
                "{m}"
            );
            assert!(!m.contains("tls-verify"), "{m}");
        }
        // Control: a refused connection keeps the TLS hint.
        let refused = ureq::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(!super::is_name_resolution(&refused));
        let m = super::describe_transport(&refused, "127.0.0.1:1", "https://127.0.0.1:1/v2/");
        assert!(m.contains("--tls-verify=false"), "{m}");
        assert_eq!(super::url_host("https://[::1]:5000/v2/"), "::1");
        assert_eq!(
            super::url_host("http://reg.example:80/token?x=1"),
            "reg.example"
        );
        assert_eq!(
            super::url_host("https://auth.docker.io/token"),
            "auth.docker.io"
        );
    }

    #[test]
    fn docker_hub_api_host() {
        assert_eq!(super::api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(super::api_host("127.0.0.1:5000"), "127.0.0.1:5000");
    }
}
