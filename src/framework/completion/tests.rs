use super::*;
use serde_json::json;

fn failed_pod(reason: Option<&str>, containers: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "fw-worker-0"},
        "status": {"phase": "Failed", "reason": reason, "containerStatuses": containers},
    }))
    .expect("pod")
}

fn exited(code: i32, reason: &str) -> serde_json::Value {
    json!([{"name": "main", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": code, "reason": reason,
            "finishedAt": "2024-01-01T00:00:00Z"}}}])
}

fn upstream_default_config() -> Classifier {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/framework/config_frameworkcontroller.yaml"
    );
    let yaml = std::fs::read_to_string(path).expect("fixture");
    Classifier::from_config_yaml(path, &yaml).expect("upstream default config loads")
}

#[test]
fn predefined_container_codes_classify_without_any_config() {
    let classifier = Classifier::default();
    for (code, phrase, attributes) in [
        (
            200,
            "ContainerTransientFailed",
            vec![CompletionTypeAttribute::Transient],
        ),
        (
            201,
            "ContainerTransientConflictFailed",
            vec![
                CompletionTypeAttribute::Transient,
                CompletionTypeAttribute::Conflict,
            ],
        ),
        (
            210,
            "ContainerPermanentFailed",
            vec![CompletionTypeAttribute::Permanent],
        ),
        (1, "ContainerUnrecognizedFailed", vec![]),
        (137, "ContainerUnrecognizedFailed", vec![]),
    ] {
        let status = classifier.classify_failed_pod(&failed_pod(None, exited(code, "Error")));
        assert_eq!(status.code, code);
        assert_eq!(status.phrase, phrase, "code {code}");
        assert_eq!(status.type_.name, CompletionTypeName::Failed);
        assert_eq!(status.type_.attributes, attributes, "code {code}");
    }
    let no_container = classifier.classify_failed_pod(&failed_pod(None, json!([])));
    assert_eq!(no_container.code, POD_FAILED_WITHOUT_FAILED_CONTAINER);
}

#[test]
fn upstream_default_config_classifies_evictions_ooms_and_signals() {
    let classifier = upstream_default_config();
    let cases = [
        (failed_pod(Some("Evicted"), json!([])), -1000, "Transient"),
        (failed_pod(Some("NodeLost"), json!([])), -1001, "Transient"),
        (failed_pod(Some("OutOfcpu"), json!([])), -1002, "Transient"),
        (
            failed_pod(Some("DeadlineExceeded"), json!([])),
            -1004,
            "Permanent",
        ),
        (
            failed_pod(None, exited(137, "OOMKilled")),
            -1200,
            "Permanent",
        ),
        (failed_pod(None, exited(130, "Error")), 130, "Transient"),
        (failed_pod(None, exited(137, "Error")), 137, "Transient"),
        (failed_pod(None, exited(132, "Error")), 132, "Permanent"),
        // The predefined codes come before users' patterns.
        (failed_pod(None, exited(200, "Error")), 200, "Transient"),
    ];
    for (pod, code, attribute) in cases {
        let status = classifier.classify_failed_pod(&pod);
        assert_eq!(status.code, code, "{:?}", pod.status);
        let attribute: CompletionTypeAttribute =
            serde_json::from_value(json!(attribute)).expect("attribute");
        assert!(status.type_.attributes.contains(&attribute), "{status:?}");
    }
    let abort = classifier.classify_failed_pod(&failed_pod(None, exited(134, "Error")));
    assert_eq!((abort.code, abort.type_.attributes.len()), (134, 0));
}

#[test]
fn configs_with_reserved_duplicate_or_patternless_codes_are_rejected() {
    for yaml in [
        "podFailureSpec:\n- code: -5\n  podPatterns: [{reasonRegex: x}]\n",
        "podFailureSpec:\n- code: 205\n  podPatterns: [{reasonRegex: x}]\n",
        "podFailureSpec:\n- code: -1000\n  podPatterns: [{reasonRegex: x}]\n- code: -1000\n  podPatterns: [{reasonRegex: y}]\n",
        "podFailureSpec:\n- code: -1000\n",
        "podFailureSpec:\n- code: -1000\n  podPatterns: [{reasonRegex: '('}]\n",
        "podFailureSpec:\n- code: -1000\n  type: {name: Succeeded}\n  podPatterns: [{reasonRegex: x}]\n",
    ] {
        let error = Classifier::from_config_yaml("fc.yaml", yaml).expect_err(yaml);
        assert!(error.to_string().starts_with("fc.yaml"), "{error}");
    }
    let empty = Classifier::from_config_yaml("fc.yaml", "").expect("empty config");
    assert_eq!(empty.codes.len(), 3);
}

#[test]
fn pod_creation_errors_are_classified_as_upstream_does() {
    assert_eq!(
        classify_pod_creation_error(Some(403), "Forbidden", "exceeded quota: q"),
        POD_CREATION_TRANSIENT_ERROR
    );
    assert_eq!(
        classify_pod_creation_error(Some(403), "Forbidden", "no"),
        POD_CREATION_UNKNOWN_ERROR
    );
    assert_eq!(
        classify_pod_creation_error(Some(422), "Invalid", "bad"),
        POD_CREATION_PERMANENT_ERROR
    );
    assert_eq!(
        classify_pod_creation_error(Some(500), "InternalError", "etcd"),
        POD_CREATION_TRANSIENT_ERROR
    );
    assert_eq!(
        classify_pod_creation_error(None, "", "connection reset"),
        POD_CREATION_TRANSIENT_ERROR
    );
}

fn policy(fancy: bool, max: i32) -> RetryPolicySpec {
    RetryPolicySpec {
        fancy_retry_policy: fancy,
        max_retry_count: max,
    }
}

fn retried(accountable: i32) -> RetryPolicyStatus {
    RetryPolicyStatus {
        total_retried_count: accountable + 3,
        accountable_retried_count: accountable,
        retry_delay_sec: None,
    }
}

#[test]
fn retry_decisions_follow_the_policy_table() {
    let unrecognized = CompletionStatus {
        code: 1,
        phrase: "ContainerUnrecognizedFailed".into(),
        type_: CompletionType::default(),
        diagnostics: String::new(),
    };
    // (policy, accountable retries so far, completion, retry, accountable, delay)
    let cases = [
        (policy(true, 0), 0, status(200, ""), true, false, 0),
        (policy(true, 0), 0, status(201, ""), true, false, 77),
        (policy(true, 5), 0, status(210, ""), false, true, 0),
        (policy(false, 1), 0, status(210, ""), true, true, 0),
        (policy(false, 1), 1, status(200, ""), false, true, 0),
        (policy(true, 1), 0, unrecognized.clone(), true, true, 0),
        (policy(true, 1), 1, unrecognized.clone(), false, true, 0),
        (policy(false, -1), 1000, unrecognized.clone(), true, true, 0),
        (policy(false, -1), 0, status(0, ""), false, true, 0),
        (policy(false, -2), 1000, status(0, ""), true, true, 0),
        (policy(false, -2), 0, status(-210, ""), false, true, 0),
        (policy(true, -2), 0, status(-220, ""), false, true, 0),
        (policy(false, -1), 0, status(-230, ""), false, true, 0),
        (policy(true, 0), 0, status(-101, ""), true, false, 0),
        (policy(false, 0), 0, status(-101, ""), false, true, 0),
        (policy(true, 0), 0, status(-300, ""), false, true, 0),
    ];
    for (policy, count, completion, retry, accountable, delay) in cases {
        let decision = should_retry(&policy, &retried(count), &completion, 77);
        assert_eq!(
            (decision.retry, decision.accountable, decision.delay_sec),
            (retry, accountable, delay),
            "{policy:?} after {count} retries, code {}: {}",
            completion.code,
            decision.reason
        );
    }
}

#[test]
fn the_shipped_framework_controller_config_loads_and_classifies() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/manifests/framework-controller/base/frameworkcontroller.yaml"
    );
    let yaml = std::fs::read_to_string(path).expect("config");
    let classifier = Classifier::from_config_yaml(path, &yaml).expect("loads");
    let evicted = classifier.classify_failed_pod(&failed_pod(Some("Evicted"), json!([])));
    assert_eq!(evicted.code, -1000);
    let oom = classifier.classify_failed_pod(&failed_pod(None, exited(137, "OOMKilled")));
    assert_eq!(oom.code, -1200);
    let killed = classifier.classify_failed_pod(&failed_pod(None, exited(137, "Error")));
    assert_eq!(
        killed.type_.attributes,
        [CompletionTypeAttribute::Transient]
    );
}
