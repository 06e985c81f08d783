//! The ServiceAccount lookup, answered from the page's ServiceAccount editor.

use std::cell::RefCell;

use serde::Serialize;
use serde_json::{json, Value};
use workload_identity_policy::host::{Lookup, ServiceAccountRef};

/// What the ServiceAccount editor describes.
#[derive(Debug, Clone, PartialEq)]
pub enum Account {
    /// A whole ServiceAccount object: found when its name and namespace (where
    /// set) are the ones looked up, as in a cluster.
    Object(Value),
    /// Only the annotations: the ServiceAccount looked up, whichever it is, has them.
    Annotations(Value),
    /// No ServiceAccount: every lookup fails with Kubernetes' "not found".
    NotFound,
}

impl Account {
    /// Reads the editor: a ServiceAccount object (it has `metadata`, `kind` or
    /// `apiVersion`), an annotations map, or nothing (no annotations).
    pub fn from_editor(text: &str) -> Result<Account, String> {
        if text.trim().is_empty() {
            return Ok(Account::Annotations(json!({})));
        }
        match serde_json::from_str(text) {
            Ok(Value::Object(map)) => {
                if ["metadata", "kind", "apiVersion"]
                    .iter()
                    .any(|k| map.contains_key(*k))
                {
                    Ok(Account::Object(Value::Object(map)))
                } else {
                    Ok(Account::Annotations(Value::Object(map)))
                }
            }
            Ok(_) => {
                Err("expected a JSON object: a ServiceAccount, or its annotations".to_string())
            }
            Err(e) => Err(format!("not JSON: {e}")),
        }
    }

    fn answer(&self, sa: &ServiceAccountRef) -> Result<Value, String> {
        let not_found = || format!("serviceaccounts \"{}\" not found", sa.name);
        match self {
            Account::NotFound => Err(not_found()),
            Account::Annotations(annotations) => Ok(json!({
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": sa.name, "namespace": sa.namespace, "annotations": annotations},
            })),
            Account::Object(object) => {
                let field = |key: &str| object.pointer(&format!("/metadata/{key}"));
                let is = |key: &str, want: &str| field(key).is_none_or(|v| v == want);
                if is("name", &sa.name) && is("namespace", &sa.namespace) {
                    Ok(object.clone())
                } else {
                    Err(not_found())
                }
            }
        }
    }
}

/// One lookup the policy made, and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LookupRecord {
    pub namespace: String,
    pub name: String,
    /// Whether the policy let the engine answer from its cache (`lookupCache`).
    pub cached: bool,
    /// The ServiceAccount returned, when found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<Value>,
    /// The error the policy received, when not found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A [`Lookup`] that answers from an [`Account`] and records every call, as
/// kwctl's host counts host calls.
#[derive(Debug)]
pub struct TypedLookup {
    account: Account,
    records: RefCell<Vec<LookupRecord>>,
}

impl TypedLookup {
    pub fn new(account: Account) -> Self {
        Self {
            account,
            records: RefCell::new(Vec::new()),
        }
    }

    /// The lookups made, in order.
    pub fn into_records(self) -> Vec<LookupRecord> {
        self.records.into_inner()
    }
}

impl Lookup for TypedLookup {
    fn service_account(&self, sa: &ServiceAccountRef, cached: bool) -> Result<Value, String> {
        let answer = self.account.answer(sa);
        let (found, error) = match &answer {
            Ok(value) => (Some(value.clone()), None),
            Err(message) => (None, Some(message.clone())),
        };
        self.records.borrow_mut().push(LookupRecord {
            namespace: sa.namespace.clone(),
            name: sa.name.clone(),
            cached,
            found,
            error,
        });
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(namespace: &str, name: &str) -> ServiceAccountRef {
        ServiceAccountRef {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    #[test]
    fn editor_forms() {
        let a = r#"{"eks.amazonaws.com/role-arn": "arn"}"#;
        let Account::Annotations(annotations) = Account::from_editor(a).unwrap() else {
            panic!("annotations expected");
        };
        let lookup = TypedLookup::new(Account::Annotations(annotations));
        let answer = lookup.service_account(&sa("ns", "app"), true).unwrap();
        assert_eq!(answer["metadata"]["name"], "app");
        assert_eq!(
            answer["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
            "arn"
        );
        assert_eq!(
            Account::from_editor(" ").unwrap(),
            Account::Annotations(json!({}))
        );
        assert!(Account::from_editor("[1]").is_err());
        assert!(Account::from_editor("{")
            .unwrap_err()
            .starts_with("not JSON: "));
    }

    #[test]
    fn an_object_answers_for_itself_only() {
        let object =
            json!({"kind": "ServiceAccount", "metadata": {"name": "app", "namespace": "ns"}});
        let lookup = TypedLookup::new(Account::from_editor(&object.to_string()).unwrap());
        assert_eq!(
            lookup.service_account(&sa("ns", "app"), true).unwrap(),
            object
        );
        assert_eq!(
            lookup
                .service_account(&sa("ns", "other"), true)
                .unwrap_err(),
            "serviceaccounts \"other\" not found"
        );
        assert!(lookup.service_account(&sa("other", "app"), true).is_err());
        let records = lookup.into_records();
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].found, Some(object));
        assert_eq!(
            records[1].error.as_deref(),
            Some("serviceaccounts \"other\" not found")
        );
    }

    #[test]
    fn not_found_counts_too() {
        let lookup = TypedLookup::new(Account::NotFound);
        assert!(lookup.service_account(&sa("ns", "app"), true).is_err());
        assert_eq!(lookup.into_records().len(), 1);
    }
}
