//! The policy's answer as `kwctl run` prints it, and a line diff of the object.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;
use similar::{Algorithm, ChangeTag, TextDiff};

use crate::pretty;

/// The AdmissionResponse `kwctl run` prints: policy-evaluator's reading of the
/// guest's ValidationResponse. As kwctl 1.31 prints it: `patchType`, `patch`
/// and `status` only when set, `auditAnnotations` and `warnings` always.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    pub uid: String,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<String>,
    /// Base64 of the JSON patch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    pub audit_annotations: Option<BTreeMap<String, String>>,
    pub warnings: Option<Vec<String>>,
}

/// `status` of a denial.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u64>,
}

/// One line of the object diff; `skip` separates hunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffLine {
    /// `equal`, `delete`, `insert` or `skip`.
    pub tag: &'static str,
    /// 1-based line in the object before, when the line is there.
    pub old: Option<usize>,
    /// 1-based line in the object after, when the line is there.
    pub new: Option<usize>,
    pub text: String,
}

/// What the page shows of one validation.
pub struct Shown {
    pub response: AdmissionResponse,
    pub patch: Option<Value>,
    pub mutated: Option<Value>,
    pub diff: Vec<DiffLine>,
}

/// Lines of context around each change in the diff.
const CONTEXT: usize = 3;

/// Reads the guest's ValidationResponse as policy-evaluator does: the patch is
/// `json_patch::diff(request.object, mutated_object)`.
pub fn present(request: &Value, object: &Value, validation: &Value) -> Shown {
    let text = |key: &str| {
        validation
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let allowed = validation.get("accepted").and_then(Value::as_bool) == Some(true);
    let mutated = validation
        .get("mutated_object")
        .filter(|v| !v.is_null())
        .cloned();
    let patch = mutated
        .as_ref()
        .and_then(|m| serde_json::to_value(json_patch::diff(object, m)).ok());
    let encoded = patch
        .as_ref()
        .and_then(|p| serde_json::to_vec(p).ok())
        .map(|bytes| STANDARD.encode(bytes));
    let response = AdmissionResponse {
        uid: request
            .get("uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        allowed,
        patch_type: encoded.as_ref().map(|_| "JSONPatch".to_string()),
        patch: encoded,
        status: (!allowed).then(|| Status {
            message: text("message"),
            code: validation.get("code").and_then(Value::as_u64),
        }),
        audit_annotations: validation
            .get("audit_annotations")
            .and_then(|a| serde_json::from_value(a.clone()).ok()),
        warnings: validation
            .get("warnings")
            .and_then(|w| serde_json::from_value(w.clone()).ok()),
    };
    let diff = mutated
        .as_ref()
        .map(|m| line_diff(&pretty(object), &pretty(m)))
        .unwrap_or_default();
    Shown {
        response,
        patch,
        mutated,
        diff,
    }
}

/// The changed lines with [`CONTEXT`] lines around them. Patience diff anchors
/// on lines found once on each side (container and env names), which keeps
/// large pods fast.
pub fn line_diff(before: &str, after: &str) -> Vec<DiffLine> {
    let diff = TextDiff::configure()
        .algorithm(Algorithm::Patience)
        .diff_lines(before, after);
    let mut lines = Vec::new();
    for (i, group) in diff.grouped_ops(CONTEXT).iter().enumerate() {
        if i > 0 {
            lines.push(DiffLine {
                tag: "skip",
                old: None,
                new: None,
                text: String::new(),
            });
        }
        for op in group {
            for change in diff.iter_changes(op) {
                lines.push(DiffLine {
                    tag: match change.tag() {
                        ChangeTag::Equal => "equal",
                        ChangeTag::Delete => "delete",
                        ChangeTag::Insert => "insert",
                    },
                    old: change.old_index().map(|n| n + 1),
                    new: change.new_index().map(|n| n + 1),
                    text: change.value().trim_end_matches('\n').to_string(),
                });
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mutation_is_a_patch_and_a_diff() {
        let request = json!({"uid": "u"});
        let object = json!({"a": 1, "b": [1]});
        let validation =
            json!({"accepted": true, "mutated_object": {"a": 1, "b": [1, 2]}, "warnings": ["w"]});
        let shown = present(&request, &object, &validation);
        assert_eq!(
            shown.patch,
            Some(json!([{"op": "add", "path": "/b/1", "value": 2}]))
        );
        assert_eq!(shown.response.uid, "u");
        assert_eq!(shown.response.patch_type.as_deref(), Some("JSONPatch"));
        assert_eq!(
            STANDARD.decode(shown.response.patch.unwrap()).unwrap(),
            br#"[{"op":"add","path":"/b/1","value":2}]"#
        );
        assert_eq!(shown.response.warnings, Some(vec!["w".to_string()]));
        assert_eq!(shown.response.status, None);
        let changed: Vec<_> = shown.diff.iter().filter(|l| l.tag != "equal").collect();
        assert_eq!(changed.len(), 3, "{:?}", shown.diff);
        assert_eq!(changed[0].tag, "delete");
        assert_eq!(changed[0].text, "    1");
        assert_eq!(changed[2].text, "    2");
    }

    #[test]
    fn denial_has_a_status_and_no_patch() {
        let validation =
            json!({"accepted": false, "message": "no", "code": 403, "mutated_object": null});
        let shown = present(&json!({}), &json!({}), &validation);
        assert!(!shown.response.allowed);
        assert_eq!(
            serde_json::to_value(&shown.response).unwrap(),
            json!({"uid": "", "allowed": false, "status": {"message": "no", "code": 403}, "auditAnnotations": null, "warnings": null})
        );
        assert!(shown.diff.is_empty() && shown.patch.is_none());
    }

    #[test]
    fn hunks_are_separated() {
        let before: String = (0..40).map(|i| format!("{i}\n")).collect();
        let after: String = (0..40)
            .map(|i| match i {
                5 => "five\n".to_string(),
                30 => "thirty\n".to_string(),
                i => format!("{i}\n"),
            })
            .collect();
        let diff = line_diff(&before, &after);
        assert_eq!(diff.iter().filter(|l| l.tag == "skip").count(), 1);
        let insert = diff.iter().find(|l| l.tag == "insert").unwrap();
        assert_eq!(
            (insert.old, insert.new, insert.text.as_str()),
            (None, Some(6), "five")
        );
    }
}
