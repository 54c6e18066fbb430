//! Fault injection (latency, failed requests) and the request log (counters, records).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use super::api::Response;
use super::status::{failure_body, reason_for};

/// One request as the stand-in received it, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// HTTP method: `GET`, `PATCH`, ...
    pub method: String,
    /// URL path, undecoded: `/api/v1/namespaces/default/pods/p/status`.
    pub path: String,
    /// Raw query string without `?` (empty when none).
    pub query: String,
    /// The `Content-Type` header, if sent.
    pub content_type: Option<String>,
    /// Every header, names lowercased, in the order received.
    pub headers: Vec<(String, String)>,
    /// The request body.
    pub body: Vec<u8>,
    /// The counter key this request was counted under (see [`super::ApiServer::counters`]).
    pub key: String,
    /// The HTTP status the stand-in answered.
    pub status: u16,
}

impl RequestRecord {
    /// The bearer token the request carried, if any.
    pub fn bearer_token(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .and_then(|(_, v)| v.strip_prefix("Bearer "))
    }

    /// The body parsed as JSON (`Null` when it is empty or not JSON).
    pub fn body_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Canned failure for the next `remaining` requests.
struct Failure {
    remaining: u32,
    code: u16,
    body: Vec<u8>,
    content_type: String,
}

/// How long the stand-in takes, per kind of work, before it answers: what a real API server
/// spends reading its watch cache (a GET or LIST), writing to etcd (a write waits for etcd's
/// fsync), and on a TLS handshake. Zero (the default) answers at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latencies {
    /// Added to every `GET` and `HEAD` (reads, lists, discovery, `/version`).
    pub read: Duration,
    /// Added to every `POST`, `PUT`, `PATCH` and `DELETE`.
    pub write: Duration,
    /// Added before the server's part of each TLS handshake.
    pub handshake: Duration,
}

impl Latencies {
    /// A real kube-apiserver with etcd on a small node, as measured on one (kube-apiserver
    /// 1.26, etcd on the node's disk): a read 1-5 ms, a write 15-60 ms (etcd's fsync), a TLS
    /// handshake about 5 ms. The values are inside those ranges, toward the fast end of
    /// writes: the benchmarks' default when they imitate a real API server.
    pub const REALISTIC: Latencies = Latencies {
        read: Duration::from_millis(3),
        write: Duration::from_millis(20),
        handshake: Duration::from_millis(5),
    };

    /// The same `d` for reads and writes, no handshake latency.
    pub fn uniform(d: Duration) -> Latencies {
        Latencies {
            read: d,
            write: d,
            handshake: Duration::ZERO,
        }
    }

    /// Parses `none`, `realistic`, or `read=MS,write=MS,handshake=MS` (any subset; the others
    /// zero).
    pub fn parse(s: &str) -> Result<Latencies, String> {
        match s {
            "none" | "0" => return Ok(Latencies::default()),
            "realistic" => return Ok(Latencies::REALISTIC),
            _ => {}
        }
        let mut l = Latencies::default();
        for part in s.split(',') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected KIND=MS"))?;
            let ms: f64 = v
                .parse()
                .ok()
                .filter(|ms: &f64| ms.is_finite() && *ms >= 0.0)
                .ok_or_else(|| format!("{part:?}: not a number of milliseconds"))?;
            let d = Duration::from_secs_f64(ms / 1000.0);
            match k {
                "read" => l.read = d,
                "write" => l.write = d,
                "handshake" => l.handshake = d,
                _ => return Err(format!("{k:?}: expected read, write or handshake")),
            }
        }
        Ok(l)
    }

    /// The latency of a request with HTTP `method`.
    pub fn of(&self, method: &str) -> Duration {
        match method {
            "GET" | "HEAD" => self.read,
            _ => self.write,
        }
    }
}

impl std::fmt::Display for Latencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "read {} ms, write {} ms, TLS handshake {} ms",
            self.read.as_secs_f64() * 1000.0,
            self.write.as_secs_f64() * 1000.0,
            self.handshake.as_secs_f64() * 1000.0
        )
    }
}

/// What the test asked the server to do wrong.
#[derive(Default)]
pub(crate) struct Faults {
    pub latency: Latencies,
    /// Latencies for one counter key only (`"POST events"` -> 2 s), instead of the method's.
    pub delays: BTreeMap<String, Duration>,
    failure: Option<Failure>,
    /// Failures armed for one counter key only (`"PATCH pods/status"` -> failure).
    targeted: BTreeMap<String, Failure>,
}

impl Faults {
    /// Arms `n` failures with a `Status` body for `code`.
    pub fn fail_next(&mut self, n: u32, code: u16) {
        let reason = reason_for(code);
        let body = failure_body(
            code,
            reason,
            &format!("injected failure: HTTP {code} from the plexus API stand-in"),
            None,
        );
        self.fail_next_with_body(n, code, body, "application/json");
    }

    /// Arms `n` failures answering `body` verbatim.
    pub fn fail_next_with_body(&mut self, n: u32, code: u16, body: Vec<u8>, content_type: &str) {
        self.failure = (n > 0).then(|| Failure {
            remaining: n,
            code,
            body,
            content_type: content_type.to_owned(),
        });
    }

    /// Arms `n` failures with a `Status` body for `code`, for requests counted under `key` only.
    pub fn fail_next_matching(&mut self, key: &str, n: u32, code: u16) {
        if n == 0 {
            self.targeted.remove(key);
            return;
        }
        let body = failure_body(
            code,
            reason_for(code),
            &format!("injected failure: HTTP {code} for {key} from the plexus API stand-in"),
            None,
        );
        self.targeted.insert(
            key.to_owned(),
            Failure {
                remaining: n,
                code,
                body,
                content_type: "application/json".to_owned(),
            },
        );
    }

    /// The injected response for a request counted under `key`, if a failure is armed for it:
    /// a failure targeted at `key` first, else the one armed for any request.
    pub fn take_failure(&mut self, key: &str) -> Option<Response> {
        if let Some(f) = self.targeted.get_mut(key) {
            let resp = f.response();
            if f.remaining == 0 {
                self.targeted.remove(key);
            }
            return Some(resp);
        }
        let f = self.failure.as_mut()?;
        let resp = f.response();
        if f.remaining == 0 {
            self.failure = None;
        }
        Some(resp)
    }
}

impl Failure {
    /// One injected response; counts it against `remaining`.
    fn response(&mut self) -> Response {
        self.remaining -= 1;
        let mut resp = Response {
            status: self.code,
            content_type: self.content_type.clone(),
            headers: Vec::new(),
            body: self.body.clone(),
        };
        if self.code == 429 {
            // The real server's priority-and-fairness rejections always say when to retry.
            resp.headers.push(("Retry-After".into(), "1".into()));
        }
        resp
    }
}

/// At most this many [`RequestRecord`]s are kept (the oldest are dropped), so a long demo run
/// does not grow without bound. Counters are never dropped.
pub(crate) const MAX_RECORDS: usize = 10_000;

/// Counters and recent requests.
#[derive(Default)]
pub(crate) struct Log {
    pub counters: BTreeMap<String, u64>,
    pub records: VecDeque<RequestRecord>,
    /// Accepted TLS connections by ALPN protocol.
    pub connections: BTreeMap<String, u64>,
    /// Requests being answered now, and the most at once.
    pub in_flight: u64,
    pub max_in_flight: u64,
}

impl Log {
    pub fn count(&mut self, key: &str) {
        *self.counters.entry(key.to_owned()).or_default() += 1;
    }

    pub fn record(&mut self, r: RequestRecord) {
        if self.records.len() == MAX_RECORDS {
            self.records.pop_front();
        }
        self.records.push_back(r);
    }
}

#[cfg(test)]
mod tests {
    use super::Latencies;
    use std::time::Duration;

    #[test]
    fn latencies_parse_and_pick_by_method() {
        assert_eq!(Latencies::parse("none").unwrap(), Latencies::default());
        assert_eq!(Latencies::parse("realistic").unwrap(), Latencies::REALISTIC);
        let l = Latencies::parse("read=2,write=25.5").unwrap();
        assert_eq!(l.of("GET"), Duration::from_millis(2));
        assert_eq!(l.of("PATCH"), Duration::from_micros(25_500));
        assert_eq!(l.of("POST"), l.write);
        assert_eq!(l.handshake, Duration::ZERO);
        assert!(Latencies::parse("reads=1").is_err());
        assert!(Latencies::parse("read=-1").is_err());
        assert!(Latencies::parse("read").is_err());
    }
}
