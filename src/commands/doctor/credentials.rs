//! Check 4, `kubeconfig` and `token`: the kubeconfig of the node config and each `tokenFile`
//! it names, by plexus's rules for secret files ([`perms`]); for a token that is a JWT (read
//! without verification), its expiry ([`EXPIRY_WARNING`]); and for a token file, how fresh the
//! installer's copy is ([`stale_after`], the **Decision** of [`super`]'s docs).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::Findings;
use crate::k8s::client;
use crate::node::NodeConfig;
use crate::perms;

/// Time left on a token under which it is flagged.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(10 * 60);

/// Check 4: the kubeconfig and its token files.
pub(super) fn credentials(f: &mut Findings, node: &NodeConfig) {
    let Some(kc) = &node.kubeconfig else {
        if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
            f.ok(
                "kubeconfig",
                "none in the node config: plexus uses the in-cluster configuration",
            );
        } else {
            f.warn(
                "kubeconfig",
                "none in the node config, and not in a cluster: plexus reads no pod annotation \
                 and no NAD, and every pod gets only the node's networks",
                Some(
                    "set \"kubeconfig\" in the node config (plexus install writes \
                     plexus.d/plexus.kubeconfig)"
                        .into(),
                ),
            );
        }
        return;
    };
    if !secret_file(f, "kubeconfig", kc, "the kubeconfig") {
        return;
    }
    let config = match client::read_kubeconfig(kc) {
        Ok(c) => c,
        Err(e) => {
            f.fail(
                "kubeconfig",
                format!("{} cannot be read: {e}", kc.display()),
                "fix it, or run plexus install again",
            );
            return;
        }
    };
    // Through JSON: the token is a secret type that serialises as itself.
    let doc = serde_json::to_value(&config).unwrap_or_default();
    let server = doc["clusters"][0]["cluster"]["server"]
        .as_str()
        .unwrap_or("?")
        .to_owned();
    let meta = fs::metadata(kc).ok();
    f.ok(
        "kubeconfig",
        format!(
            "{}: owner uid {}, mode {:04o}, server {server}",
            kc.display(),
            meta.as_ref().map_or(0, MetadataExt::uid),
            meta.as_ref().map_or(0, |m| m.mode() & 0o7777)
        ),
    );
    let users = doc["users"].as_array().cloned().unwrap_or_default();
    let mut any = false;
    for user in &users {
        let u = &user["user"];
        if let Some(file) = u["tokenFile"].as_str() {
            any = true;
            token_file(f, Path::new(file));
        } else if let Some(token) = u["token"].as_str() {
            any = true;
            token_expiry(f, token, "the kubeconfig's inline token", None);
        }
    }
    if !any {
        f.ok(
            "token",
            "the kubeconfig names no token (another kind of credential)",
        );
    }
}

/// The rules of [`perms::secret_file`] for `path`, reported under `check`; false when it is
/// refused or missing.
fn secret_file(f: &mut Findings, check: &'static str, path: &Path, what: &str) -> bool {
    if fs::metadata(path).is_err() {
        f.fail(
            check,
            format!(
                "{} ({what}) does not exist or cannot be read",
                path.display()
            ),
            "run plexus install again (or fix the node config's \"kubeconfig\")",
        );
        return false;
    }
    match perms::inspect_secret_file(path, what) {
        Err(e) => {
            let msg = e.msg();
            let (detail, fix) = match msg.split_once(" Fix: ") {
                Some((d, fix)) => (d.to_owned(), fix.replace('`', "")),
                None => (
                    msg,
                    "make it owned by root, mode 0600, in a directory only root may change"
                        .to_owned(),
                ),
            };
            f.fail(check, detail, fix);
            false
        }
        Ok(Some(mode)) => {
            f.warn(
                check,
                format!(
                    "{} has mode {mode:04o}: readable by group or others (the next plexus sets \
                     it to 0600)",
                    path.display()
                ),
                Some(format!("chmod 0600 {}", path.display())),
            );
            true
        }
        Ok(None) => true,
    }
}

/// The token file's rules, expiry and freshness.
fn token_file(f: &mut Findings, path: &Path) {
    if !secret_file(f, "token", path, "the token file of the kubeconfig") {
        return;
    }
    let token = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            f.fail(
                "token",
                format!("{} cannot be read: {e}", path.display()),
                "run plexus install again",
            );
            return;
        }
    };
    let age = fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok());
    token_expiry(f, token.trim(), &path.display().to_string(), age);
}

/// The claims of a JWT's payload (unverified), `None` when `token` is not a JWT.
fn jwt_claims(token: &str) -> Option<Map<String, Value>> {
    let parts: Vec<&str> = token.trim().split('.').collect();
    let [_, payload, _] = parts.as_slice() else {
        return None;
    };
    match serde_json::from_slice(&base64url_decode(payload)?).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// Decodes base64url (or standard base64), padding optional.
fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Seconds since the epoch, now.
fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// An epoch second as RFC 3339.
fn rfc3339(secs: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(secs)
        .map_or_else(|_| secs.to_string(), |t| t.to_string())
}

/// `45s`, `12m`, `3h20m`, `4d`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172_800 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d", s / 86_400),
    }
}

/// How old the installer's copy of a token may get before it is flagged (see [the module
/// docs](super)): 5 minutes past the kubelet's rotation point, 80% of the token's lifetime (at most
/// 24 h); 1 h when the lifetime is unknown.
pub fn stale_after(lifetime: Option<Duration>) -> Duration {
    match lifetime {
        Some(l) => (l.mul_f64(0.8)).min(Duration::from_secs(24 * 3600)) + Duration::from_secs(300),
        None => Duration::from_secs(3600),
    }
}

/// The expiry of `token` (named `what`), and the freshness of its file copy when `age` is
/// known.
fn token_expiry(f: &mut Findings, token: &str, what: &str, age: Option<Duration>) {
    const CHECK: &str = "token";
    let fix_copy = "the installer (plexus install, the plexus DaemonSet's pod on this node) \
                    keeps the copy fresh: check that it runs and what it logs";
    let claims = jwt_claims(token);
    let num = |k: &str| claims.as_ref()?.get(k)?.as_i64();
    let exp = num("exp");
    let iat = num("iat").or_else(|| num("nbf"));
    let warn_after = claims
        .as_ref()
        .and_then(|c| c.get("kubernetes.io")?.get("warnafter")?.as_i64());
    let now = now_secs();
    let mut lifetime = None;
    let mut healthy = true;
    match (&claims, exp) {
        (None, _) => f.ok(CHECK, format!("{what}: not a JWT, its expiry is unknown")),
        (Some(_), None) => f.ok(
            CHECK,
            format!("{what}: a service-account token that does not expire"),
        ),
        (Some(_), Some(exp)) => {
            let left = exp - now;
            if left <= 0 {
                healthy = false;
                f.fail(
                    CHECK,
                    format!(
                        "{what}: the token expired at {} ({} ago): the API server rejects it",
                        rfc3339(exp),
                        human(Duration::from_secs(left.unsigned_abs()))
                    ),
                    fix_copy,
                );
            } else if left < EXPIRY_WARNING.as_secs() as i64 {
                healthy = false;
                f.warn(
                    CHECK,
                    format!(
                        "{what}: the token expires in {} (at {})",
                        human(Duration::from_secs(left as u64)),
                        rfc3339(exp)
                    ),
                    Some(fix_copy.into()),
                );
            } else if let Some(w) = warn_after.filter(|w| *w <= now) {
                healthy = false;
                f.warn(
                    CHECK,
                    format!(
                        "{what}: the token is past its intended lifetime since {} (the API \
                         server still takes it until {}, and logs a warning)",
                        rfc3339(w),
                        rfc3339(exp)
                    ),
                    Some(fix_copy.into()),
                );
            }
            lifetime = iat
                .map(|iat| warn_after.unwrap_or(exp) - iat)
                .filter(|l| *l > 0)
                .map(|l| Duration::from_secs(l as u64));
            if healthy {
                f.ok(
                    CHECK,
                    format!(
                        "{what}: a bound token, expires in {} (at {})",
                        human(Duration::from_secs(left as u64)),
                        rfc3339(exp)
                    ),
                );
            }
        }
    }
    let Some(age) = age else { return };
    let limit = stale_after(lifetime);
    if age > limit {
        f.warn(
            CHECK,
            format!(
                "{what}: the copy was last written {} ago, longer than the {} after which \
                 {}",
                human(age),
                human(limit),
                if lifetime.is_some() {
                    "the kubelet has rotated the token it copies"
                } else {
                    "a rotated token would have been copied"
                }
            ),
            Some(fix_copy.into()),
        );
    } else {
        f.ok(
            CHECK,
            format!("{what}: the copy was last written {} ago", human(age)),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use serde_json::json;

    use super::super::Status;
    use super::super::tests::statuses;
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        crate::install::kubeconfig::base64(bytes)
            .trim_end_matches('=')
            .replace('+', "-")
            .replace('/', "_")
    }

    fn jwt(claims: Value) -> String {
        format!(
            "{}.{}.c2ln",
            b64(br#"{"alg":"RS256"}"#),
            b64(claims.to_string().as_bytes())
        )
    }

    #[test]
    fn base64url_and_jwt_claims() {
        for s in [
            "",
            "f",
            "fo",
            "foo",
            "foob",
            "fooba",
            "foobar",
            "\u{ff}\u{fe}?>",
        ] {
            assert_eq!(base64url_decode(&b64(s.as_bytes())).unwrap(), s.as_bytes());
        }
        assert_eq!(base64url_decode("Zm9vYg==").unwrap(), b"foob");
        assert!(base64url_decode("a b").is_none());
        let c = jwt_claims(&jwt(json!({"exp": 5, "iat": 1}))).unwrap();
        assert_eq!(c["exp"], 5);
        assert!(jwt_claims("not-a-jwt").is_none());
        assert!(jwt_claims("a.b").is_none());
    }

    #[test]
    fn token_expiry_and_freshness() {
        let now = now_secs();
        let mut f = Findings::default();
        token_expiry(
            &mut f,
            &jwt(json!({"exp": now - 60, "iat": now - 3660})),
            "t",
            None,
        );
        assert_eq!(statuses(&f), [("token", Status::Fail)]);
        assert!(f.0[0].detail.contains("expired at"), "{:?}", f.0);

        let mut f = Findings::default();
        token_expiry(
            &mut f,
            &jwt(json!({"exp": now + 300, "iat": now - 3300})),
            "t",
            None,
        );
        assert_eq!(statuses(&f), [("token", Status::Warn)]);

        // Fresh for its lifetime, then stale after 80% of it plus 5 minutes.
        let good = jwt(json!({"exp": now + 3000, "iat": now - 600}));
        let mut f = Findings::default();
        token_expiry(&mut f, &good, "t", Some(Duration::from_secs(600)));
        assert_eq!(statuses(&f), [("token", Status::Ok), ("token", Status::Ok)]);
        let mut f = Findings::default();
        token_expiry(&mut f, &good, "t", Some(Duration::from_secs(3600)));
        assert_eq!(
            statuses(&f),
            [("token", Status::Ok), ("token", Status::Warn)]
        );
        assert_eq!(
            stale_after(Some(Duration::from_secs(3600))),
            Duration::from_secs(2880 + 300)
        );
        assert_eq!(stale_after(None), Duration::from_secs(3600));
        // An extended token counts its lifetime up to warnafter.
        let extended = jwt(json!({"exp": now + 365 * 86400, "iat": now - 600,
                                  "kubernetes.io": {"warnafter": now + 3000}}));
        let mut f = Findings::default();
        token_expiry(&mut f, &extended, "t", Some(Duration::from_secs(3500)));
        assert_eq!(
            statuses(&f),
            [("token", Status::Ok), ("token", Status::Warn)]
        );
        // Not a JWT: unknown lifetime, 1 h.
        let mut f = Findings::default();
        token_expiry(&mut f, "opaque", "t", Some(Duration::from_secs(1800)));
        assert_eq!(statuses(&f), [("token", Status::Ok), ("token", Status::Ok)]);
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(human(Duration::from_secs(45)), "45s");
        assert_eq!(human(Duration::from_secs(600)), "10m");
        assert_eq!(human(Duration::from_secs(3 * 3600 + 1200)), "3h20m");
        assert_eq!(human(Duration::from_secs(5 * 86400)), "5d");
    }

    #[test]
    fn an_inline_token_is_read_for_its_expiry_and_a_token_file_for_its_copy() {
        let d = tempfile::tempdir().unwrap();
        fs::set_permissions(d.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let kc = d.path().join("kc");
        let now = now_secs();
        let write = |user: Value| {
            let doc = json!({
                "apiVersion": "v1", "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443"}}],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            });
            fs::write(&kc, doc.to_string()).unwrap();
            fs::set_permissions(&kc, fs::Permissions::from_mode(0o600)).unwrap();
        };
        let node = |kc: &Path| {
            let m = json!({"name": "n", "type": "plexus", "kubeconfig": kc});
            NodeConfig::from_map(m.as_object().unwrap().clone()).unwrap()
        };
        write(json!({"token": jwt(json!({"exp": now - 5, "iat": now - 3600}))}));
        let mut f = Findings::default();
        credentials(&mut f, &node(&kc));
        assert_eq!(
            statuses(&f),
            [("kubeconfig", Status::Ok), ("token", Status::Fail)],
            "{:?}",
            f.0
        );
        assert!(f.0[0].detail.contains("server https://10.0.0.1:6443"));
        assert!(
            f.0[1]
                .detail
                .starts_with("the kubeconfig's inline token: the token expired")
        );

        let token = d.path().join("token");
        fs::write(&token, jwt(json!({"exp": now + 3000, "iat": now - 600}))).unwrap();
        fs::set_permissions(&token, fs::Permissions::from_mode(0o640)).unwrap();
        write(json!({"tokenFile": token}));
        let mut f = Findings::default();
        credentials(&mut f, &node(&kc));
        assert_eq!(
            statuses(&f),
            [
                ("kubeconfig", Status::Ok),
                ("token", Status::Warn),
                ("token", Status::Ok),
                ("token", Status::Ok)
            ],
            "{:?}",
            f.0
        );
        assert_eq!(
            f.0[1].fix.as_deref(),
            Some(format!("chmod 0600 {}", token.display()).as_str())
        );
        assert_eq!(fs::metadata(&token).unwrap().mode() & 0o777, 0o640);

        let mut f = Findings::default();
        credentials(&mut f, &node(&d.path().join("absent")));
        assert_eq!(statuses(&f), [("kubeconfig", Status::Fail)]);
    }
}
