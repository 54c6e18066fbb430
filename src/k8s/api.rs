//! The seam between plexus and the Kubernetes API: the few calls plexus makes, as a trait.
//!
//! [`KubeApi`] is implemented by [`super::client::Client`] (the real `kube` client) and by
//! fakes in unit tests. Every call is synchronous and bounded in time by the implementation.
//! The calls, and why each is the minimum:
//! - [`KubeApi::pod`]: the pod's metadata only (uid and annotations), never its spec/status;
//! - [`KubeApi::nad`]: one NetworkAttachmentDefinition by namespace/name (`None` when absent);
//! - [`KubeApi::set_pod_annotation`]: one merge patch of one annotation on `pods/status`
//!   (needs only the `pods/status` permission, and cannot drop a concurrent writer's other
//!   annotations);
//! - [`KubeApi::event`]: a best-effort Event; never fails the caller.

use std::collections::BTreeMap;

use crate::cni::Error;

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

/// The Kubernetes calls plexus makes.
pub trait KubeApi {
    /// The pod's metadata. A missing pod is an error naming it.
    fn pod(&self, namespace: &str, name: &str) -> Result<PodMeta, Error>;
    /// A NAD, or `None` when it does not exist.
    fn nad(&self, namespace: &str, name: &str) -> Result<Option<Nad>, Error>;
    /// Sets one annotation of a pod through `pods/status`.
    fn set_pod_annotation(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
        value: &str,
    ) -> Result<(), Error>;
    /// Records an Event about the pod; failures are logged, never returned.
    fn event(&self, pod: &PodMeta, kind: EventType, reason: &str, message: &str);
}
