//! Registry answers that callers may act on (log in, give up on a missing
//! tag), as a type they can downcast to rather than text to match. The
//! messages are what users see.

/// A request a registry refused or could not answer with the content.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry wants Basic credentials and `hutch login` stored none.
    #[error("registry {registry} asks for a username and password: `hutch login {registry}` first")]
    LoginRequired { registry: String },
    /// The stored credentials were refused (HTTP 401 after answering the
    /// challenge with them).
    #[error(
        "registry {registry} refused the credentials of {username} (HTTP 401): `hutch login {registry}` again"
    )]
    CredentialsRefused { registry: String, username: String },
    /// Anonymous access was refused (HTTP 401 without stored credentials).
    #[error(
        "registry {registry} refused anonymous access (HTTP 401): `hutch login {registry}` first"
    )]
    AnonymousRefused { registry: String },
    /// The manifest (tag or digest) or blob is not in the repository (HTTP
    /// 404). `repository` is "registry R, repository N".
    #[error("{repository}: {reference} not found (HTTP 404 for {kind})")]
    NotFound {
        repository: String,
        kind: String,
        reference: String,
    },
    /// Access to it was denied (HTTP 401 or 403 after authentication).
    #[error("{repository}: access to {reference} denied (HTTP {status})")]
    Denied {
        repository: String,
        reference: String,
        status: u16,
    },
    /// Any other status where the content was expected.
    #[error("{repository}: HTTP {status} for {kind}/{reference}")]
    Status {
        repository: String,
        kind: String,
        reference: String,
        status: u16,
    },
}

#[cfg(test)]
mod tests {
    use super::RegistryError;

    #[test]
    fn messages_are_the_ones_users_saw_before_the_type() {
        let reg = || "127.0.0.1:5000".to_owned();
        let repo = || "registry 127.0.0.1:5000, repository app".to_owned();
        let cases = [
            (
                RegistryError::LoginRequired { registry: reg() },
                "registry 127.0.0.1:5000 asks for a username and password: \
                 `hutch login 127.0.0.1:5000` first",
            ),
            (
                RegistryError::CredentialsRefused {
                    registry: reg(),
                    username: "me".into(),
                },
                "registry 127.0.0.1:5000 refused the credentials of me (HTTP 401): \
                 `hutch login 127.0.0.1:5000` again",
            ),
            (
                RegistryError::AnonymousRefused { registry: reg() },
                "registry 127.0.0.1:5000 refused anonymous access (HTTP 401): \
                 `hutch login 127.0.0.1:5000` first",
            ),
            (
                RegistryError::NotFound {
                    repository: repo(),
                    kind: "manifests".into(),
                    reference: "1.0".into(),
                },
                "registry 127.0.0.1:5000, repository app: 1.0 not found (HTTP 404 for manifests)",
            ),
            (
                RegistryError::Denied {
                    repository: repo(),
                    reference: "1.0".into(),
                    status: 403,
                },
                "registry 127.0.0.1:5000, repository app: access to 1.0 denied (HTTP 403)",
            ),
            (
                RegistryError::Status {
                    repository: repo(),
                    kind: "blobs".into(),
                    reference: "sha256:ab".into(),
                    status: 500,
                },
                "registry 127.0.0.1:5000, repository app: HTTP 500 for blobs/sha256:ab",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), want);
            // Callers find it through the contexts added on the way up.
            let wrapped = anyhow::Error::new(e).context("pulling app");
            assert!(wrapped.downcast_ref::<RegistryError>().is_some());
        }
    }
}
