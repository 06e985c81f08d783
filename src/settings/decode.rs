//! Settings from JSON text: the one decoder, for `validate_settings` and for the settings' text
//! in every `validate` payload.
//!
//! serde's derive reads the text (which also refuses duplicate keys) through serde_path_to_error,
//! which names the field of an error. Then the structure serde cannot check (a list in place of
//! an object) and the values ([`Settings::validate`]).

use std::fmt;

use super::Settings;
use crate::json::{scalars_are, without_position, Key};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

impl Settings {
    /// Decodes and validates settings JSON. `null` and empty input mean `{}`.
    /// The error lists every problem, each naming its field.
    pub fn from_json(raw: &[u8]) -> Result<Settings, String> {
        let trimmed = raw.trim_ascii();
        if trimmed.is_empty() || trimmed == b"null" {
            return Ok(Settings::default());
        }
        let settings = deserialize(trimmed)?;
        // serde's derive also reads a struct from a JSON list (fields by position), which
        // bypasses the unknown-field check: only list settings may be lists.
        let mut errors = Vec::new();
        let lists = Lists {
            path: &String::new,
            allowed: false,
            errors: &mut errors,
        };
        lists
            .deserialize(&mut serde_json::Deserializer::from_slice(trimmed))
            .map_err(|e| format!("settings: not JSON: {}", without_position(&e)))?;
        if !errors.is_empty() {
            return Err(errors.join("; "));
        }
        settings.validate()?;
        Ok(settings)
    }
}

/// The text through serde's derive, with serde_path_to_error naming the field of an error.
fn deserialize(text: &[u8]) -> Result<Settings, String> {
    let mut de = serde_json::Deserializer::from_slice(text);
    let settings = serde_path_to_error::deserialize(&mut de).map_err(describe_error)?;
    de.end()
        .map_err(|e| format!("settings: {}", without_position(&e)))?;
    Ok(settings)
}

/// Settings whose value is a list, by their camelCase names: every list field of the settings'
/// types (a test checks it against `types.rs`). A list anywhere else is refused; inside
/// `valueFrom` (passed through to Kubernetes) anything goes.
const LIST_SETTINGS: [&str; 10] = [
    "podIdentityAssociations",
    "serviceAccounts",
    "customProviders",
    "env",
    "annotations",
    "environmentVariables",
    "identityBindings",
    "values",
    "usernames",
    "groups",
];

/// Finds lists where the settings have none, walking the settings' text (no document of it is
/// built). The path of a setting is only spelled out for a message.
struct Lists<'a> {
    path: &'a dyn Fn() -> String,
    /// Whether this value is a list setting's, whose items may be anything but lists.
    allowed: bool,
    errors: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Lists<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Lists<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Key>()? {
            // Passed through to Kubernetes: anything goes.
            if key.0 == "valueFrom" {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let path = || match (self.path)() {
                parent if parent.is_empty() => key.0.to_string(),
                parent => format!("{parent}.{}", key.0),
            };
            map.next_value_seed(Lists {
                path: &path,
                allowed: LIST_SETTINGS.contains(&key.0.as_ref()),
                errors: self.errors,
            })?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if !self.allowed {
            self.errors.push(match (self.path)() {
                path if path.is_empty() => "settings: expected an object, found a list".to_string(),
                path => format!("{path}: expected an object or a value, found a list"),
            });
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(());
        }
        let mut i = 0;
        loop {
            let path = || format!("{}[{i}]", (self.path)());
            let item = Lists {
                path: &path,
                allowed: false,
                errors: self.errors,
            };
            if seq.next_element_seed(item)?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    scalars_are!(());
}

/// Turns a serde error into "path: problem".
fn describe_error(err: serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = err.path().to_string();
    let message = without_position(err.inner());
    // The path already ends with the unknown key: show it whole.
    if let Some((_, rest)) = message
        .strip_prefix("unknown field `")
        .and_then(|m| m.split_once('`'))
    {
        return format!("unknown field `{path}`{rest}");
    }
    if path == "." {
        format!("settings: {message}")
    } else {
        format!("{path}: {message}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::LookupFailure;
    use rstest::rstest;

    #[rstest]
    #[case::empty_object("{}")]
    #[case::null("null")]
    #[case::empty("")]
    #[case::partial_aws(r#"{"aws":{"region":"eu-west-1"}}"#)]
    #[case::reject_mode(r#"{"lookupFailure":"reject"}"#)]
    fn valid_settings(#[case] raw: &str) {
        assert!(Settings::from_json(raw.as_bytes()).is_ok(), "{raw}");
    }

    #[test]
    fn defaults_are_the_anchors_defaults() {
        let s = Settings::from_json(b"{}").unwrap();
        assert!(s.aws.enabled && s.stackit.enabled);
        assert_eq!(s.aws.audience, "sts.amazonaws.com");
        assert_eq!(s.aws.token_expiration_seconds, 86400);
        assert_eq!(s.stackit.token_expiration_seconds, 600);
        assert_eq!(s.stackit.audience, "sts.accounts.stackit.cloud");
        assert_eq!(s.lookup_failure, LookupFailure::Admit);
    }

    #[rstest]
    #[case::unknown_top_level(r#"{"vault":{}}"#, "unknown field `vault`, expected one of `aws`")]
    #[case::unknown_nested(
        r#"{"aws":{"roleArn":"x"}}"#,
        "unknown field `aws.roleArn`, expected one of `enabled`"
    )]
    #[case::wrong_type(
        r#"{"aws":{"tokenExpirationSeconds":"abc"}}"#,
        "aws.tokenExpirationSeconds: invalid type: string \"abc\", expected i64"
    )]
    #[case::bad_mode(
        r#"{"lookupFailure":"maybe"}"#,
        "lookupFailure: unknown variant `maybe`"
    )]
    #[case::short_expiry(
        r#"{"aws":{"tokenExpirationSeconds":100}}"#,
        "aws.tokenExpirationSeconds: 100 is out of range"
    )]
    #[case::bad_prefix(
        r#"{"aws":{"annotationPrefix":"Not A Prefix"}}"#,
        "aws.annotationPrefix: \"Not A Prefix\" is not a DNS subdomain"
    )]
    #[case::relative_mount(
        r#"{"aws":{"tokenMountPath":"var/run"}}"#,
        "aws.tokenMountPath: \"var/run\" is not an absolute"
    )]
    #[case::bad_region(
        r#"{"aws":{"region":"EU West"}}"#,
        "aws.region: \"EU West\" is not an AWS region"
    )]
    #[case::empty_audience(
        r#"{"stackit":{"audience":" "}}"#,
        "stackit.audience: must not be empty"
    )]
    fn invalid_settings_name_the_field(#[case] raw: &str, #[case] expected_start: &str) {
        let err = Settings::from_json(raw.as_bytes()).unwrap_err();
        assert!(err.starts_with(expected_start), "got {err:?}");
    }

    #[rstest]
    #[case::provider_as_list(
        r#"{"aws":[false]}"#,
        "aws: expected an object or a value, found a list"
    )]
    #[case::empty_list(r#"{"aws":[]}"#, "aws: expected an object or a value, found a list")]
    #[case::whole_settings(r#"[{"enabled":false}]"#, "settings: expected an object, found a list")]
    #[case::nested_item(
        r#"{"customProviders":[["vault"]]}"#,
        "customProviders[0]: invalid length 1, expected struct CustomProvider with 9 elements"
    )]
    #[case::deep(
        r#"{"identityInjection":{"trustedRequesters":[]}}"#,
        "identityInjection.trustedRequesters: expected an object or a value, found a list"
    )]
    fn lists_in_place_of_objects_are_refused(#[case] raw: &str, #[case] expected: &str) {
        assert_eq!(Settings::from_json(raw.as_bytes()).unwrap_err(), expected);
    }

    /// A list field missing from LIST_SETTINGS would be refused as misplaced; one listed that is
    /// no list field would let a list through where serde reads a struct by position.
    #[test]
    fn list_settings_are_the_list_fields_of_the_types() {
        let camel = |name: &str| {
            let mut out = String::new();
            let mut upper = false;
            for c in name.chars() {
                if c == '_' {
                    upper = true;
                } else {
                    out.push(if upper { c.to_ascii_uppercase() } else { c });
                    upper = false;
                }
            }
            out
        };
        let mut fields: Vec<String> = include_str!("types.rs")
            .lines()
            .filter_map(|line| {
                let (name, ty) = line.trim().strip_prefix("pub ")?.split_once(": ")?;
                ty.starts_with("Vec<").then(|| camel(name))
            })
            .collect();
        fields.sort();
        fields.dedup();
        let mut listed: Vec<String> = LIST_SETTINGS.iter().map(|s| s.to_string()).collect();
        listed.sort();
        assert_eq!(listed, fields);
    }
}
