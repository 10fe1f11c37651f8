//! The upgrade step of a reconcile: rendered objects rewritten into the API versions the cluster
//! serves ([`crate::upgrade`], served versions from discovery), and the Warning event that names
//! objects left out.

use super::cluster::Cluster;
use crate::applications::RenderedApplication;
use crate::kfdef::UpgradeStatus;

/// Upgrades a fresh render for the cluster's served versions.
pub async fn upgrade(
    cluster: &Cluster,
    kfdef: &str,
    apps: &mut [RenderedApplication],
) -> Result<(), kube::Error> {
    let served = cluster.served().await?;
    let report = crate::upgrade::applications(apps, &served);
    if report.upgraded_count() > 0 || !report.skipped.is_empty() {
        tracing::info!(
            kfdef,
            upgraded = report.upgraded_count(),
            skipped = report.skipped.len(),
            "upgraded objects of API versions the cluster no longer serves"
        );
    }
    Ok(())
}

/// The note of a Warning event naming the skipped objects, when they differ from what the last
/// status listed (an unchanged list is not announced again: an idle install writes nothing).
pub fn skipped_note(
    previous: Option<&UpgradeStatus>,
    current: Option<&UpgradeStatus>,
) -> Option<String> {
    let skipped =
        |status: Option<&UpgradeStatus>| status.map(|s| s.skipped.clone()).unwrap_or_default();
    let now = skipped(current);
    if now.is_empty() || now == skipped(previous) {
        return None;
    }
    let objects: Vec<String> = now
        .iter()
        .map(|s| format!("{} ({}): {}", s.object, s.application, s.reason))
        .collect();
    Some(format!(
        "not applied, the cluster serves no equivalent: {}",
        objects.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kfdef::SkippedObject;

    fn status(objects: &[&str]) -> UpgradeStatus {
        UpgradeStatus {
            upgraded: 0,
            upgraded_from: Vec::new(),
            skipped: objects
                .iter()
                .map(|o| SkippedObject {
                    application: "app".into(),
                    object: (*o).into(),
                    reason: "gone".into(),
                })
                .collect(),
        }
    }

    #[test]
    fn skipped_objects_are_announced_once() {
        let first = status(&["PodSecurityPolicy.policy/v1beta1 a"]);
        let note = skipped_note(None, Some(&first)).expect("announced");
        assert!(
            note.contains("PodSecurityPolicy.policy/v1beta1 a (app): gone"),
            "{note}"
        );
        assert_eq!(skipped_note(Some(&first), Some(&first)), None);
        let second = status(&[
            "PodSecurityPolicy.policy/v1beta1 a",
            "PodSecurityPolicy.policy/v1beta1 b",
        ]);
        assert!(skipped_note(Some(&first), Some(&second)).is_some());
        assert_eq!(skipped_note(Some(&first), None), None);
    }
}
