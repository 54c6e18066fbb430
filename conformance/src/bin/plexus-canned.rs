//! `plexus-canned`: a CNI plugin that does nothing and answers at once, for benchmarks.
//!
//! It stands in for real delegates when the benchmark measures plexus's own overhead with as
//! little noise as possible (`plexus-bench cycle --plugins canned`): the delegate time is then a
//! process start and a few writes, the same through plexus and directly. ADD prints a result in
//! the config's `cniVersion` (one interface named `CNI_IFNAME` in `CNI_NETNS`, one address);
//! DEL, CHECK, STATUS and GC print nothing; VERSION lists the versions. It changes nothing on
//! the machine. Install a copy of it under the delegate's name in a plugin directory (plexus
//! refuses a link that resolves outside its plugin directories).

use std::io::Read;

fn main() {
    let mut stdin = String::new();
    let _ = std::io::stdin().read_to_string(&mut stdin);
    let config: serde_json::Value = serde_json::from_str(&stdin).unwrap_or_default();
    let version = config
        .get("cniVersion")
        .and_then(|v| v.as_str())
        .unwrap_or("1.0.0");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    match var("CNI_COMMAND").as_str() {
        "ADD" => {
            let doc = serde_json::json!({
                "cniVersion": version,
                "interfaces": [{"name": var("CNI_IFNAME"), "sandbox": var("CNI_NETNS")}],
                "ips": [{"interface": 0, "address": "10.99.0.2/24"}],
                "dns": {},
            });
            println!("{doc}");
        }
        "VERSION" => println!(
            "{{\"cniVersion\":\"{version}\",\"supportedVersions\":[\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]}}"
        ),
        _ => {}
    }
}
