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
    // Scalars are JSON-quoted: valid YAML whatever characters a path or token holds.
    let q = |s: &str| serde_json::to_string(s).expect("a string serializes");
    let user = match credential {
        Credential::Token(t) => format!("token: {}", q(t)),
        Credential::TokenFile(p) => format!("tokenFile: {}", q(&p.display().to_string())),
    };
    format!(
        "# Written by plexus-conformance's Kubernetes API stand-in.\n\
         apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: plexus-apiserver\n  \
           cluster:\n    \
             server: {server}\n    \
             certificate-authority-data: {ca}\n\
         users:\n\
         - name: plexus\n  \
           user:\n    \
             {user}\n\
         contexts:\n\
         - name: plexus\n  \
           context:\n    \
             cluster: plexus-apiserver\n    \
             user: plexus\n    \
             namespace: default\n\
         current-context: plexus\n\
         preferences: {{}}\n"
    )
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
