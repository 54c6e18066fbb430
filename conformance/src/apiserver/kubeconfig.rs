//! kubeconfig files pointing at the stand-in.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::Engine;

/// How the kubeconfig's user authenticates.
pub(crate) enum Credential<'a> {
    /// `token: <token>`.
    Token(&'a str),
    /// `tokenFile: <path>`.
    TokenFile(&'a Path),
}

/// A single-context kubeconfig (`plexus`, namespace `default`) for `server`, trusting `ca_pem`.
pub(crate) fn render(server: &str, ca_pem: &str, credential: Credential<'_>) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let user = match credential {
        Credential::Token(t) => serde_json::json!({"token": t}),
        Credential::TokenFile(p) => serde_json::json!({"tokenFile": p.display().to_string()}),
    };
    // JSON, like the kubeconfig `plexus install` writes (a kubeconfig is YAML; JSON is YAML).
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "plexus-apiserver", "cluster": {
            "server": server,
            "certificate-authority-data": ca,
        }}],
        "users": [{"name": "plexus", "user": user}],
        "contexts": [{"name": "plexus", "context": {
            "cluster": "plexus-apiserver",
            "user": "plexus",
            "namespace": "default",
        }}],
        "current-context": "plexus",
        "preferences": {},
    });
    format!("{doc:#}\n")
}

/// Writes `text` to `path` with mode 0600 (also when the file already existed).
pub(crate) fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(fs::Permissions::from_mode(0o600))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}
