//! The seam between plexus and the Kubernetes API: the few calls plexus makes, as a trait.
//!
//! [`KubeApi`] is implemented by [`super::client::Client`] (the real `kube` client) and by
//! fakes in unit tests. Every call is synchronous and bounded in time by the implementation.
//! The calls, and why each is the minimum:
//! - [`KubeApi::pod`]: the pod's metadata only (uid and annotations), never its spec/status;
//! - [`KubeApi::nad`]: one NetworkAttachmentDefinition by namespace/name (`None` when absent);
//!
//! both from the API server's watch cache where it has them (a second read, of storage, only
//! when the cache's answer could be stale: see [`super::client`]);
//! - [`KubeApi::set_pod_annotation`]: one merge patch of one annotation on `pods/status`
//!   (needs only the `pods/status` permission, and cannot drop a concurrent writer's other
//!   annotations), with the pod's UID as a precondition;
//! - [`KubeApi::event`]: a best-effort Event; never fails the caller;
//!
//! and, only for an ADD whose device plugins left a network with a resource name without a
//! device (Dynamic Resource Allocation, see [`crate::devices::dra`]):
//! - [`KubeApi::pod_claims`]: the pod's `spec.nodeName` and its claims from `status` (the one
//!   read of a whole pod object);
//! - [`KubeApi::resource_claim`]: one ResourceClaim (`resource.k8s.io/v1`);
//! - [`KubeApi::resource_slices`]: the ResourceSlices of one driver, on one node when given,
//!   selected by the API server (`fieldSelector`);
//!
//! and, for `plexus doctor` only (never on a CNI command's path):
//! - [`KubeApi::server_version`]: `GET /version`, one cheap authenticated request that says
//!   whether the API server is reachable and takes plexus's credentials;
//! - [`KubeApi::all_nads`]: every NetworkAttachmentDefinition of every namespace (the `list`
//!   permission plexus's ClusterRole grants);
//! - [`KubeApi::find_pod`]: a pod's metadata from storage, `None` when it does not exist;
//! - [`KubeApi::access_review`]: a SelfSubjectAccessReview: may plexus's identity do this?

use std::collections::BTreeMap;

use crate::cni::Error;
use crate::devices::dra::{PodClaims, ResourceClaim, ResourceSlice};

/// The parts of a pod plexus reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodMeta {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub annotations: BTreeMap<String, String>,
}

impl PodMeta {
    /// `namespace/name`, as operators write it.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The parts of a NetworkAttachmentDefinition plexus reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Nad {
    pub namespace: String,
    pub name: String,
    /// `spec.config`, empty when absent.
    pub config: String,
    pub annotations: BTreeMap<String, String>,
}

/// Event type: `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// One permission, as a SelfSubjectAccessReview's `resourceAttributes` names it (cluster-wide:
/// no namespace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access<'a> {
    /// `get`, `patch`, `*`...
    pub verb: &'a str,
    /// The API group, `""` for the core group.
    pub group: &'a str,
    /// `pods`, `network-attachment-definitions`, `*`...
    pub resource: &'a str,
    /// `status`, or `""`.
    pub subresource: &'a str,
}

impl Access<'_> {
    /// `patch pods/status`, `get network-attachment-definitions.k8s.cni.cncf.io`: how
    /// `kubectl auth can-i` spells it.
    pub fn describe(&self) -> String {
        let mut r = self.resource.to_owned();
        if !self.group.is_empty() && self.group != "*" {
            r = format!("{r}.{}", self.group);
        }
        if !self.subresource.is_empty() {
            r = format!("{r}/{}", self.subresource);
        }
        format!("{} {r}", self.verb)
    }
}

/// The API server's answer to an [`Access`] question.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// `status.reason`: which binding allowed it, or why not (often empty).
    pub reason: String,
}

/// What a [`KubeApi`] answers for the calls it does not make.
fn unsupported(call: &str) -> Error {
    Error::Internal(format!("this Kubernetes client does not support {call}"))
}

/// The Kubernetes calls plexus makes.
pub trait KubeApi {
    /// The pod's metadata. A missing pod is an error naming it. It may come from the API
    /// server's cache, a moment behind (see [`super::client`]).
    fn pod(&self, namespace: &str, name: &str) -> Result<PodMeta, Error>;
    /// The pod's metadata as stored now, never from a cache: what settles a UID that
    /// [`pod`](KubeApi::pod) answered differently from the runtime's. The default is `pod`.
    fn pod_latest(&self, namespace: &str, name: &str) -> Result<PodMeta, Error> {
        self.pod(namespace, name)
    }
    /// Starts reading the pod without waiting, so that connecting to the API server overlaps
    /// with the caller's own work; the next [`pod`](KubeApi::pod) of the same pod takes that
    /// answer. A hint: the default does nothing.
    fn prefetch_pod(&self, _namespace: &str, _name: &str) {}
    /// A NAD, or `None` when it does not exist.
    fn nad(&self, namespace: &str, name: &str) -> Result<Option<Nad>, Error>;
    /// Starts reading these NADs, (namespace, name) each, without waiting, so that the reads
    /// run concurrently where the connection allows it (HTTP/2); the next
    /// [`nad`](KubeApi::nad) of each takes its answer. A hint: the default does nothing.
    fn prefetch_nads(&self, _nads: &[(String, String)]) {}
    /// Sets one annotation of a pod through `pods/status`. The patch carries the pod's UID
    /// (when known): the API server refuses to change a UID, so a pod of the same name
    /// recreated since `pod` was known is not written to.
    fn set_pod_annotation(&self, pod: &PodMeta, key: &str, value: &str) -> Result<(), Error>;
    /// Records an Event about the pod; failures are logged, never returned.
    fn event(&self, pod: &PodMeta, kind: EventType, reason: &str, message: &str);
    /// Gets ready for [`events_after_exit`](KubeApi::events_after_exit) (the real client
    /// starts its detached sender), so that the call costs less when it comes. A hint: the
    /// default does nothing.
    fn prepare_events_after_exit(&self) {}
    /// Records these Events (kind, reason, message) without this process waiting for them:
    /// the real client hands them to a detached sender ([`super::events::Pending`]).
    /// The default records each with [`event`](KubeApi::event).
    fn events_after_exit(&self, pod: &PodMeta, events: &[(EventType, String, String)]) {
        for (kind, reason, message) in events {
            self.event(pod, *kind, reason, message);
        }
    }

    /// The pod's node and DRA claims, `None` when there is no such pod. `latest`: from
    /// storage, not the API server's cache.
    fn pod_claims(
        &self,
        _namespace: &str,
        _name: &str,
        _latest: bool,
    ) -> Result<Option<PodClaims>, Error> {
        Err(unsupported("reading a pod's ResourceClaims"))
    }
    /// A ResourceClaim, `None` when it does not exist. `latest`: from storage.
    fn resource_claim(
        &self,
        _namespace: &str,
        _name: &str,
        _latest: bool,
    ) -> Result<Option<ResourceClaim>, Error> {
        Err(unsupported("reading ResourceClaims"))
    }
    /// The ResourceSlices of `driver` (on `node` when given), as the API server selects them.
    fn resource_slices(
        &self,
        _driver: &str,
        _node: Option<&str>,
    ) -> Result<Vec<ResourceSlice>, Error> {
        Err(unsupported("listing ResourceSlices"))
    }

    /// The API server's version (`GET /version`): one cheap request that needs working
    /// credentials. For `plexus doctor`.
    fn server_version(&self) -> Result<String, Error> {
        Err(unsupported("reading the server version"))
    }
    /// Every NAD of every namespace, by namespace then name. For `plexus doctor`.
    fn all_nads(&self) -> Result<Vec<Nad>, Error> {
        Err(unsupported("listing NetworkAttachmentDefinitions"))
    }
    /// The pod's metadata as stored now (never from a cache), `None` when there is no such
    /// pod. For `plexus doctor`.
    fn find_pod(&self, _namespace: &str, _name: &str) -> Result<Option<PodMeta>, Error> {
        Err(unsupported("looking pods up"))
    }
    /// Whether plexus's identity may do `access`, cluster-wide (a SelfSubjectAccessReview).
    /// For `plexus doctor`.
    fn access_review(&self, _access: &Access<'_>) -> Result<Decision, Error> {
        Err(unsupported("SelfSubjectAccessReviews"))
    }
}

/// A [`KubeApi`] for unit tests: NADs from a list, NAD reads recorded, optionally "down".
#[cfg(test)]
pub(crate) mod fake {
    use std::cell::RefCell;

    use super::{EventType, KubeApi, Nad, PodMeta};
    use crate::cni::Error;

    #[derive(Default)]
    pub(crate) struct FakeApi {
        pub nads: Vec<Nad>,
        /// `namespace/name` of every NAD read, in order.
        pub reads: RefCell<Vec<String>>,
        /// Every call fails as an unreachable API would (code 11).
        pub down: bool,
    }

    impl FakeApi {
        pub fn with(nads: Vec<Nad>) -> FakeApi {
            FakeApi {
                nads,
                ..FakeApi::default()
            }
        }
    }

    impl KubeApi for FakeApi {
        fn pod(&self, _: &str, _: &str) -> Result<PodMeta, Error> {
            unreachable!("these tests read no pod")
        }
        fn nad(&self, ns: &str, name: &str) -> Result<Option<Nad>, Error> {
            if self.down {
                return Err(Error::Kubernetes {
                    msg: "unreachable".into(),
                    details: String::new(),
                    transient: true,
                });
            }
            self.reads.borrow_mut().push(format!("{ns}/{name}"));
            Ok(self
                .nads
                .iter()
                .find(|n| n.namespace == ns && n.name == name)
                .cloned())
        }
        fn set_pod_annotation(&self, _: &PodMeta, _: &str, _: &str) -> Result<(), Error> {
            unreachable!("these tests write no annotation")
        }
        fn event(&self, _: &PodMeta, _: EventType, _: &str, _: &str) {}
    }
}
