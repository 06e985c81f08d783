//! Request shapes the engine refuses before any policy runs (kwctl and policy-server parse every
//! request into a typed AdmissionRequest first: see the `hostile-request-without-kind`,
//! `hostile-user-groups-a-string` and `hostile-user-info-a-string` fixtures, whose goldens record
//! that refusal). The policy must still answer them sanely if another host hands them over: here the
//! native core gets the raw fixture requests directly.

use std::path::Path;

use serde_json::{json, Value};
use workload_identity_policy::host::{Lookup, ServiceAccountRef};
use workload_identity_policy::validate_payload;

/// Counts lookups; none of these requests may make one.
struct NoLookup(std::cell::Cell<usize>);

impl Lookup for NoLookup {
    fn service_account(&self, _: &ServiceAccountRef, _: bool) -> Result<Value, String> {
        self.0.set(self.0.get() + 1);
        Err("no ServiceAccount in this test".into())
    }
}

/// The native decision on a fixture's raw request (its AdmissionReview's `.request`) and settings.
fn decide(fixture: &str) -> Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(fixture);
    let read = |file: &str| -> Value {
        let text = std::fs::read_to_string(dir.join(file)).unwrap_or_else(|_| "{}".into());
        serde_json::from_str(&text).unwrap()
    };
    let review = read("request.json");
    let payload = json!({"request": review["request"], "settings": read("settings.json")});
    let lookup = NoLookup(std::cell::Cell::new(0));
    let response = validate_payload(&serde_json::to_vec(&payload).unwrap(), &lookup);
    assert_eq!(lookup.0.get(), 0, "{fixture}: no lookup expected");
    response
}

fn template(response: &Value) -> &Value {
    &response["mutated_object"]["spec"]["template"]
}

#[test]
fn a_request_without_kind_is_accepted_unchanged() {
    let response = decide("hostile-request-without-kind");
    assert_eq!(response["accepted"], json!(true), "{response}");
    assert_eq!(response["mutated_object"], Value::Null, "{response}");
    assert_eq!(response["warnings"], Value::Null, "{response}");
}

#[test]
fn groups_of_the_wrong_type_are_no_groups() {
    let response = decide("hostile-user-groups-a-string");
    assert_eq!(response["accepted"], json!(true), "{response}");
    // Not trusted: the requester's own claims are stamped over the forged annotation.
    let template = template(&response);
    assert_eq!(
        template["metadata"]["annotations"],
        json!({"union.ai/created-by": "alice"})
    );
    assert_eq!(
        template["spec"]["containers"][0]["env"],
        json!([{"name": "UNION_USER_SUBJECT", "value": "u-1"}])
    );
    assert_eq!(
        response["audit_annotations"],
        json!({"caller-identity-stamped-by": "alice",
               "caller-identity-stamped-keys": "union.ai/created-by,UNION_USER_SUBJECT"})
    );
}

#[test]
fn a_user_info_that_is_not_an_object_is_anonymous() {
    let response = decide("hostile-user-info-a-string");
    assert_eq!(response["accepted"], json!(false), "{response}");
    assert_eq!(response["code"], json!(403));
    assert_eq!(
        response["message"],
        json!("Deployment team-a/web: required claim \"preferred_username\" for \"union.ai/created-by\" is missing from the identity of \"<anonymous>\"")
    );
}
