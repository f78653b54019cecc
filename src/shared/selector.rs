//! Tag selectors as the configuration writes them (`key=value,key`), and
//! cluster membership by tag.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Comma-separated `key=value` pairs that must all match; a bare `key` matches
/// any value.
///
/// Kept sorted by key so that two spellings of the same selector compare equal
/// and print alike.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TagSelector {
    // `None` is the bare key: any value, including the empty one.
    pairs: BTreeMap<String, Option<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SelectorError {
    #[error("tag selector is empty (expected comma-separated key=value or key)")]
    Empty,
    #[error("tag selector {selector:?} has an empty item (expected key=value or key between commas)")]
    EmptyItem { selector: String },
    #[error("tag selector item {item:?} has an empty key (expected key=value or key)")]
    EmptyKey { item: String },
    #[error("tag selector item {item:?} repeats the key {key:?} (each key may appear once)")]
    DuplicateKey { key: String, item: String },
}

impl TagSelector {
    pub fn parse(s: &str) -> Result<TagSelector, SelectorError> {
        if s.trim().is_empty() {
            return Err(SelectorError::Empty);
        }
        let mut pairs = BTreeMap::new();
        for raw in s.split(',') {
            let item = raw.trim();
            if item.is_empty() {
                return Err(SelectorError::EmptyItem { selector: s.to_owned() });
            }
            // Split at the first `=` only: EC2 tag values may themselves
            // contain `=`.
            let (key, value) = match item.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim().to_owned())),
                None => (item, None),
            };
            if key.is_empty() {
                return Err(SelectorError::EmptyKey { item: item.to_owned() });
            }
            if pairs.insert(key.to_owned(), value).is_some() {
                return Err(SelectorError::DuplicateKey { key: key.to_owned(), item: item.to_owned() });
            }
        }
        Ok(TagSelector { pairs })
    }

    pub fn matches(&self, tags: &BTreeMap<String, String>) -> bool {
        self.pairs.iter().all(|(key, wanted)| match (tags.get(key), wanted) {
            (Some(_), None) => true,
            (Some(actual), Some(wanted)) => actual == wanted,
            (None, _) => false,
        })
    }

    /// The pairs in canonical (key) order; `None` stands for a bare key.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_deref()))
    }
}

impl fmt::Display for TagSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (key, value)) in self.pairs.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match value {
                Some(value) => write!(f, "{key}={value}")?,
                None => f.write_str(key)?,
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for TagSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TagSelector::parse(s)
    }
}

impl TryFrom<String> for TagSelector {
    type Error = SelectorError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        TagSelector::parse(&s)
    }
}

impl From<TagSelector> for String {
    fn from(selector: TagSelector) -> String {
        selector.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::ec2::model::tag_map as tags;

    #[test]
    fn a_pair_matches_only_its_exact_value() {
        let s = TagSelector::parse("kops.k8s.io/instancegroup=nodes").unwrap();
        assert!(s.matches(&tags(&[("kops.k8s.io/instancegroup", "nodes")])));
        assert!(!s.matches(&tags(&[("kops.k8s.io/instancegroup", "masters")])));
        assert!(!s.matches(&tags(&[("kops.k8s.io/instancegroup", "Nodes")])));
        assert!(!s.matches(&tags(&[])));
    }

    #[test]
    fn a_bare_key_matches_any_value_including_empty() {
        let s = TagSelector::parse("karpenter.sh/nodepool").unwrap();
        assert!(s.matches(&tags(&[("karpenter.sh/nodepool", "default")])));
        assert!(s.matches(&tags(&[("karpenter.sh/nodepool", "")])));
        assert!(!s.matches(&tags(&[("karpenter.sh/nodeclaim", "x")])));
    }

    #[test]
    fn a_key_with_an_empty_value_matches_only_the_empty_value() {
        let s = TagSelector::parse("role=").unwrap();
        assert!(s.matches(&tags(&[("role", "")])));
        assert!(!s.matches(&tags(&[("role", "node")])));
        assert_eq!(s.to_string(), "role=");
    }

    #[test]
    fn every_item_must_match() {
        let s = TagSelector::parse("role=node,team").unwrap();
        assert!(s.matches(&tags(&[("role", "node"), ("team", "a"), ("other", "x")])));
        assert!(!s.matches(&tags(&[("role", "node")])));
        assert!(!s.matches(&tags(&[("team", "a")])));
    }

    #[test]
    fn items_keys_and_values_are_trimmed_and_printed_in_key_order() {
        let s = TagSelector::parse("  team , role = node ").unwrap();
        assert_eq!(s.to_string(), "role=node,team");
        assert_eq!(s, TagSelector::parse("role=node,team").unwrap());
    }

    #[test]
    fn a_value_may_contain_an_equals_sign() {
        let s = TagSelector::parse("expr=a=b").unwrap();
        assert!(s.matches(&tags(&[("expr", "a=b")])));
        assert_eq!(s.to_string(), "expr=a=b");
    }

    #[test]
    fn an_empty_selector_is_an_error() {
        assert_eq!(TagSelector::parse(""), Err(SelectorError::Empty));
        assert_eq!(TagSelector::parse("  "), Err(SelectorError::Empty));
    }

    #[test]
    fn an_empty_item_is_an_error_quoting_the_selector() {
        let err = TagSelector::parse("a=1,,b").unwrap_err();
        assert_eq!(err, SelectorError::EmptyItem { selector: "a=1,,b".into() });
        assert!(err.to_string().contains("\"a=1,,b\""), "{err}");
        assert!(TagSelector::parse("a=1,").is_err());
        assert!(TagSelector::parse(", a").is_err());
    }

    #[test]
    fn an_empty_key_is_an_error_quoting_the_item() {
        let err = TagSelector::parse("a, =x").unwrap_err();
        assert_eq!(err, SelectorError::EmptyKey { item: "=x".into() });
        assert!(err.to_string().contains("\"=x\""), "{err}");
    }

    #[test]
    fn a_duplicate_key_is_an_error_even_when_one_is_bare() {
        let err = TagSelector::parse("a=1, a=2").unwrap_err();
        assert_eq!(err, SelectorError::DuplicateKey { key: "a".into(), item: "a=2".into() });
        assert!(err.to_string().contains("\"a=2\""), "{err}");
        assert!(matches!(TagSelector::parse("a,a=1"), Err(SelectorError::DuplicateKey { .. })));
    }

    #[test]
    fn the_canonical_form_parses_back_to_the_same_selector() {
        let s = TagSelector::parse("z, y=2 ,x=").unwrap();
        assert_eq!(TagSelector::parse(&s.to_string()).unwrap(), s);
    }

    #[test]
    fn string_conversions_use_the_canonical_form() {
        let s: TagSelector = "b,a=1".parse().unwrap();
        assert_eq!(String::from(s.clone()), "a=1,b");
        assert_eq!(TagSelector::try_from("a=1,b".to_string()).unwrap(), s);
        assert!(TagSelector::try_from(",".to_string()).is_err());
    }
}
