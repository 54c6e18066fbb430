//! Everything plexus needs from Kubernetes: the networks annotation, NADs, the pod, and the
//! network-status annotation.
//!
//! - [`api`]: the seam, the few calls plexus makes ([`api::KubeApi`]);
//! - [`client`]: the real implementation on `kube`, bounded and retried;
//! - [`transport`]: its HTTPS stack, HTTP/2 when the server offers it;
//! - [`events`]: the `AddedInterface` / `AddFailed` Events (best-effort);
//! - [`pod`]: which pod a call is for, its lookup and the UID rule;
//! - [`nad`]: NAD lookup, config resolution (inline or on disk), namespace isolation;
//! - [`networks`]: a pod's selected networks, resolved (annotation → isolation → NADs);
//! - [`selection`]: the `k8s.v1.cni.cncf.io/networks` annotation parser (pure);
//! - [`status`]: the `k8s.v1.cni.cncf.io/network-status` builder (pure) and its writer.

pub mod api;
pub mod client;
pub mod events;
pub mod nad;
pub mod networks;
pub mod pod;
pub mod selection;
pub mod status;
pub mod transport;
