//! The manifests in `k8s/` parse as YAML into the kubernetes API types (k8s-openapi), and fit
//! together: the Service is headless and selects the Deployment's pods, the Role lets the
//! Deployment's ServiceAccount list and watch EndpointSlices, the ports and environment match
//! what the binary reads, the peer token comes from the Secret, and the grace period outlasts
//! the drain.

use std::path::Path;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Default)]
struct Manifests {
    service_accounts: Vec<ServiceAccount>,
    roles: Vec<Role>,
    role_bindings: Vec<RoleBinding>,
    services: Vec<Service>,
    deployments: Vec<Deployment>,
    secrets: Vec<Secret>,
}

/// Parses `value` into `T`, and checks that nothing was lost on the way: a misspelt or
/// misplaced field, which serde would skip, makes the round trip differ.
fn typed<T: DeserializeOwned + Serialize>(value: serde_yaml_ng::Value, origin: &str) -> T {
    let typed: T = serde_yaml_ng::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{origin}: not a valid object: {e}"));
    let written = serde_json::to_value(&typed).unwrap();
    let read = serde_json::to_value(&value).unwrap();
    assert_eq!(
        written, read,
        "{origin}: a field is unknown to kubernetes or misplaced"
    );
    typed
}

fn load() -> Manifests {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("k8s");
    let mut manifests = Manifests::default();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in {}", dir.display());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = serde_yaml_ng::Value::deserialize(document)
                .unwrap_or_else(|e| panic!("{}: not YAML: {e}", file.display()));
            let kind = value["kind"].as_str().unwrap_or_default().to_owned();
            let origin = format!("{}: {kind}", file.display());
            match kind.as_str() {
                "ServiceAccount" => manifests.service_accounts.push(typed(value, &origin)),
                "Role" => manifests.roles.push(typed(value, &origin)),
                "RoleBinding" => manifests.role_bindings.push(typed(value, &origin)),
                "Service" => manifests.services.push(typed(value, &origin)),
                "Deployment" => manifests.deployments.push(typed(value, &origin)),
                "Secret" => manifests.secrets.push(typed(value, &origin)),
                other => panic!("{}: unexpected kind {other:?}", file.display()),
            }
        }
    }
    manifests
}

#[test]
fn every_manifest_parses_into_its_kubernetes_type() {
    let m = load();
    assert_eq!(
        [
            m.service_accounts.len(),
            m.roles.len(),
            m.role_bindings.len(),
            m.services.len(),
            m.deployments.len(),
            m.secrets.len()
        ],
        [1, 1, 1, 1, 1, 1]
    );
}

#[test]
fn the_manifests_fit_together() {
    let m = load();
    let deployment = &m.deployments[0];
    let spec = &deployment.spec;
    assert_eq!(spec.replicas, Some(3));
    let pod_labels = spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    let pod = spec.template.spec.as_ref().unwrap();

    // The headless Service selects these pods and names the port the binary serves.
    let service = m.services[0].spec.as_ref().unwrap();
    assert_eq!(service.cluster_ip.as_deref(), Some("None"), "headless");
    for (key, value) in service.selector.as_ref().unwrap() {
        assert_eq!(
            pod_labels.get(key),
            Some(value),
            "the Service selects the pods by {key}"
        );
    }
    let container = &pod.containers[0];
    let container_port = &container.ports.as_ref().unwrap()[0];
    assert_eq!(container_port.container_port, 8080);
    assert_eq!(service.ports.as_ref().unwrap()[0].port, 8080);

    // The binary's environment: its IP from the downward API, the Service's name.
    let env = container.env.as_ref().unwrap();
    let var = |name: &str| {
        env.iter()
            .find(|v| v.name == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    let pod_ip = var("POD_IP")
        .value_from
        .as_ref()
        .unwrap()
        .field_ref
        .as_ref()
        .unwrap();
    assert_eq!(pod_ip.field_path, "status.podIP");
    assert_eq!(
        var("SERVICE_NAME").value.as_deref(),
        m.services[0].metadata.name.as_deref()
    );
    assert_eq!(var("PORT").value.as_deref(), Some("8080"));

    // The peer token comes from the Secret, never from the manifest itself.
    let token = var("GROUPCACHE_PEER_TOKEN");
    assert_eq!(
        token.value, None,
        "the token is not written in the Deployment"
    );
    let secret_ref = token
        .value_from
        .as_ref()
        .and_then(|from| from.secret_key_ref.as_ref())
        .expect("GROUPCACHE_PEER_TOKEN comes from a secretKeyRef");
    let secret = m
        .secrets
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(secret_ref.name.as_str()))
        .unwrap_or_else(|| panic!("no Secret named {:?}", secret_ref.name));
    assert_ne!(
        secret_ref.optional,
        Some(true),
        "a pod never starts without it"
    );
    let placeholder = secret
        .string_data
        .as_ref()
        .and_then(|data| data.get(&secret_ref.key))
        .unwrap_or_else(|| panic!("the Secret has no key {:?}", secret_ref.key));
    assert!(
        groupcache::security::PeerToken::new(placeholder).is_ok(),
        "the placeholder is a valid token, so that the manifests run as they are"
    );

    // SIGTERM starts a drain of DRAIN_TIMEOUT_SECONDS; SIGKILL comes after the grace period.
    let drain: i64 = var("DRAIN_TIMEOUT_SECONDS")
        .value
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    let grace = pod
        .termination_grace_period_seconds
        .expect("terminationGracePeriodSeconds is set");
    assert!(drain < grace, "drain {drain} s, grace period {grace} s");

    // The pods run as the ServiceAccount that the RoleBinding gives the Role.
    let account = m.service_accounts[0].metadata.name.clone().unwrap();
    assert_eq!(pod.service_account_name.as_ref(), Some(&account));
    let binding = &m.role_bindings[0];
    assert_eq!(binding.role_ref.kind, "Role");
    assert_eq!(
        Some(&binding.role_ref.name),
        m.roles[0].metadata.name.as_ref()
    );
    assert!(
        binding
            .subjects
            .as_ref()
            .unwrap()
            .iter()
            .any(|s| s.kind == "ServiceAccount" && s.name == account)
    );

    // The Role allows exactly what the watcher does: list and watch EndpointSlices.
    let rules = m.roles[0].rules.as_ref().unwrap();
    assert!(rules.iter().any(|rule| {
        let has = |list: &Option<Vec<String>>, item: &str| {
            list.as_ref().is_some_and(|l| l.iter().any(|x| x == item))
        };
        has(&rule.api_groups, "discovery.k8s.io")
            && has(&rule.resources, "endpointslices")
            && has(&Some(rule.verbs.clone()), "list")
            && has(&Some(rule.verbs.clone()), "watch")
    }));
}
