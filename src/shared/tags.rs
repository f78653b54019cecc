//! Tags that say what belongs to a cluster, read the same way by every job.
//!
//! Kubernetes on AWS tags a cluster's resources in one of two styles: the
//! legacy `KubernetesCluster=<name>`, or the tag key
//! `kubernetes.io/cluster/<name>` (value `owned` or `shared`).

use std::collections::BTreeMap;

use crate::shared::config::{ConfigError, Env, excerpt};

/// The cluster's name, shared by the jobs that read it.
pub const KUBE_CLUSTER_NAME: &str = "KUBE_CLUSTER_NAME";
/// Legacy cluster tag key (`KubernetesCluster=<name>`).
pub const LEGACY_CLUSTER_TAG: &str = "KubernetesCluster";
/// Cluster tag key prefix (`kubernetes.io/cluster/<name>`).
pub const CLUSTER_TAG_PREFIX: &str = "kubernetes.io/cluster/";
/// An EC2 filter pattern (`?` one character, `*` any) that every cluster
/// tag key, of either style, matches: a server-side pre-selection, never
/// the test itself ([`is_cluster_member`] is).
pub const CLUSTER_TAG_KEYS: &str = "?ubernetes*";

/// Whether the tags mark a resource of cluster `name`, in either style.
pub fn is_cluster_member(tags: &BTreeMap<String, String>, name: &str) -> bool {
    tags.get(LEGACY_CLUSTER_TAG).is_some_and(|v| v == name) || tags.contains_key(&format!("{CLUSTER_TAG_PREFIX}{name}"))
}

/// `KUBE_CLUSTER_NAME`, if set. A name with white space or a comma cannot
/// be a cluster name (and would make a tag filter match something else).
pub fn cluster_name(env: &Env<'_>, expected: &'static str) -> Result<Option<String>, ConfigError> {
    let name = env.get(KUBE_CLUSTER_NAME);
    if let Some(name) = &name
        && name.chars().any(|c| c.is_whitespace() || c == ',')
    {
        return Err(ConfigError::new(
            KUBE_CLUSTER_NAME,
            format!("{:?} contains white space or a comma", excerpt(name)),
            expected,
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::ec2::model::tag_map as tags;

    #[test]
    fn either_tag_style_marks_a_member() {
        let cases = [
            (tags(&[("KubernetesCluster", "k8s.example.com")]), true),
            (tags(&[("kubernetes.io/cluster/k8s.example.com", "owned")]), true),
            (tags(&[("kubernetes.io/cluster/k8s.example.com", "")]), true),
            (tags(&[("KubernetesCluster", "other.example.com")]), false),
            (tags(&[("kubernetes.io/cluster/other.example.com", "owned")]), false),
            (tags(&[("Name", "k8s.example.com")]), false),
        ];
        for (tags, member) in cases {
            assert_eq!(is_cluster_member(&tags, "k8s.example.com"), member, "{tags:?}");
        }
    }
}
