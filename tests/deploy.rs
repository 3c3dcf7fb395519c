//! The Kubernetes manifests in deploy/k8s: valid against the Kubernetes API schemas
//! (`kubernetes-validate --strict` from the project's .venv, offline: it bundles them),
//! and consistent with the service they run: the grace period covers the preStop pause
//! and the drain, the autoscaler's metric is one `callmood serve` exports, and its target
//! is below the pod's cap on calls.
use std::path::{Path, PathBuf};
use std::process::Command;

fn k8s_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/k8s")
}

fn manifest(name: &str) -> String {
    std::fs::read_to_string(k8s_dir().join(name)).unwrap()
}

/// The value after `key` on the (first) line that holds it, e.g. `--drain-timeout=`.
fn value_after<'a>(text: &'a str, key: &str) -> &'a str {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.starts_with('#') && l.contains(key))
        .unwrap_or_else(|| panic!("no {key}"));
    line[line.find(key).unwrap() + key.len()..].trim()
}

fn number(text: &str, key: &str) -> f64 {
    let v = value_after(text, key).trim_matches('"');
    match v.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().unwrap() / 1000.0,
        None => v
            .parse()
            .unwrap_or_else(|_| panic!("{key} {v} is not a number")),
    }
}

#[test]
fn manifests_are_valid_kubernetes() {
    let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/kubernetes-validate");
    if !tool.exists() {
        eprintln!(
            "SKIPPED: no {}. Run scripts/setup (or `.venv/bin/python -m pip install \
             kubernetes-validate==1.37.0`) to run this test.",
            tool.display()
        );
        return;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(k8s_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 4, "{files:?}");
    let out = Command::new(&tool)
        .args(["--strict", "--kubernetes-version", "1.37.0"])
        .args(&files)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    for kind in [
        "deployment/callmood",
        "service/callmood",
        "poddisruptionbudget/callmood",
        "horizontalpodautoscaler/callmood",
    ] {
        assert!(
            text.contains(&format!("passed for resource {kind}")),
            "{text}"
        );
    }
}

#[test]
fn the_grace_period_covers_the_drain() {
    let d = manifest("deployment.yaml");
    let grace = number(&d, "terminationGracePeriodSeconds:");
    let drain = number(&d, "--drain-timeout=");
    let pre_stop = number(&d, "seconds:");
    // After the drain the service gives open connections 1 s to close.
    assert!(
        grace >= pre_stop + drain + 1.0,
        "grace {grace} s < preStop {pre_stop} s + drain {drain} s + 1 s"
    );
    assert_eq!(drain, callmood::server::DEFAULT_DRAIN_TIMEOUT.as_secs_f64());
}

#[test]
fn the_autoscaler_scales_on_an_exported_metric_below_the_cap() {
    let hpa = manifest("hpa.yaml");
    let metric = value_after(&hpa, "name: callmood_");
    let metric = format!("callmood_{metric}");
    assert_eq!(metric, "callmood_calls_in_flight");
    // What `/metrics` serves while a call is in flight.
    let metrics = std::sync::Arc::new(callmood::server::metrics::Metrics::new());
    let _call = metrics.call_started("rtp-udp");
    let served = metrics.render(None);
    assert!(
        served.contains(&format!("{metric}{{transport=\"rtp-udp\"}} 1")),
        "{metric} is not exported: {served}"
    );
    let target = number(&hpa, "averageValue:");
    let cap = number(&manifest("deployment.yaml"), "--max-calls=");
    assert!(target > 0.0 && target < cap, "target {target}, cap {cap}");
}
